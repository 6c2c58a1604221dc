"""Operations tests run real ``palaver`` processes: see :mod:`tests.deployment`."""

from tests.deployment import deployment, make_database

__all__ = ["deployment", "make_database"]
