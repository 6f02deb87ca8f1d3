"""The run report: the data it shows, its HTML/Markdown sections and inline SVG plots."""
