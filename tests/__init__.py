"""charter's tests, one folder per stage package (tasks/<stage>)."""
