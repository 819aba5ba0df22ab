"""Flow's database: SQLAlchemy 2 engine and sessions (models and migrations arrive with the data layer)."""
