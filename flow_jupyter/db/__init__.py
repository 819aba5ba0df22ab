"""Flow's database: SQLAlchemy 2 models, engine/session set-up and Alembic migrations."""
from .database import Database

__all__ = ["Database"]
