"""The HTML report: its data, sections, figures and templates."""
