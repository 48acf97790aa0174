"""Constants that settings, task contents and components share; imports nothing of the project."""
