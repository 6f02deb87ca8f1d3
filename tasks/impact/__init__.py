"""The impact stage: what a constitution edit does to the stored AI labels and the preference set."""
