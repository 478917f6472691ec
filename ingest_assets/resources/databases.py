"""The databases datasets read, as Dagster resources shared by every dataset that reads them.

Declare one per database in a definitions file under ``defs/`` (for example
``defs/app_db/resources.py``), its URL from an environment variable, and name it in the datasets
(``source: {kind: sql, resource: app_db, table: ...}``)::

    @dg.definitions
    def resources() -> dg.Definitions:
        return dg.Definitions(resources={"app_db": SqlDatabase(url=dg.EnvVar("APP_DB_URL"))})

The UI's resources page then lists the database with the variable its URL comes from (never
the URL) and the assets that read it; another environment sets the variable to another database,
and every dataset moves with it.
"""

import dagster as dg
from pydantic import Field


class SqlDatabase(dg.ConfigurableResource):
    """A SQL database (PostgreSQL, DuckDB, SQLite or any SQLAlchemy URL) that datasets read.

    Attributes:
        url: The database URL, e.g. ``postgresql://user:password@host:5432/db``; give it as
            ``dg.EnvVar("APP_DB_URL")`` so that it never appears in definitions or the UI.
    """

    url: str = Field(
        description="The database URL (a secret: give it as an EnvVar, e.g. APP_DB_URL)."
    )
