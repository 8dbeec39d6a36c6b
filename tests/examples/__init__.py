"""The runnable examples and the reference KPI collector, end to end."""
