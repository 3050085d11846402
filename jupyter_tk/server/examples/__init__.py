"""Copying example notebooks into the user's folder without ever losing an edit."""
