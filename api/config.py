"""Service settings, from environment variables (pydantic-settings).

Every setting is ``OPTIMIZER_<NAME>`` except the database URL, which is the conventional
``DATABASE_URL`` (``OPTIMIZER_DATABASE_URL`` works too).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from optimizer.deadlines import hard_deadline_s


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="OPTIMIZER_", extra="ignore")

    database_url: str = Field(
        "sqlite:///optimizer.db",
        validation_alias=AliasChoices("DATABASE_URL", "OPTIMIZER_DATABASE_URL"),
        description="SQLAlchemy URL; SQLite file by default, postgresql+psycopg://... for PG")
    api_keys: str = Field(
        "", description="NAME:ROLE:SECRET,... (ROLE: reader, analyst or admin); more keys may "
        "be stored hashed in the database (python -m api keys add)")
    key_refresh_s: float = Field(5.0, gt=0, description="how often keys stored in the database "
                                 "are re-read (a revocation elsewhere takes effect within it)")
    share_secret: str | None = Field(
        None, min_length=32, description="HMAC key of share links; default: a random one "
        "generated once and kept in the database (so every server of one database agrees)")
    share_ttl_s: float = Field(7 * 86_400.0, gt=0, description="a share link's default life")
    share_max_ttl_s: float = Field(90 * 86_400.0, gt=0, description="longest life a share "
                                   "link may be given")
    public_url: str | None = Field(None, description="base URL of share links (default: the "
                                   "URL the request came in on)")
    batch_max_unfinished_per_key: int = Field(
        4, ge=1, description="batches one key may have queued or running; beyond: 429")
    batch_max_unfinished_rows_per_key: int = Field(
        200_000, ge=1, description="rows one key may have queued or running; beyond: 429")
    quota_retry_after_s: int = Field(60, ge=1, description="Retry-After on a quota's 429")
    storage_budget_mb: float = Field(
        2000.0, ge=0, description="stored runs, datasets and batch rows one key may hold, MB "
        "(JSON size); 0: no budget")
    db_connect_timeout_s: float = Field(5.0, gt=0, description="connecting to the database")
    db_timeout_s: float = Field(
        15.0, gt=0, description="one database statement (PostgreSQL statement_timeout, SQLite "
        "busy timeout) and the longest a request waits for the database before its 503")
    store_attempts: int = Field(3, ge=1, le=10, description="tries to store a solved run")
    workers: int = Field(2, ge=1, le=64, description="solver worker processes")
    worker_max_tasks: int = Field(200, ge=1,
                                  description="solves before a worker is replaced (memory)")
    max_queue: int = Field(16, ge=0, description="requests that may wait for a worker")
    max_time_limit_s: float = Field(60.0, gt=0, description="cap on a scenario's time_limit_s")
    max_sample_cells: int = Field(
        1_000_000, ge=1, le=2_000_000,
        description="cap on a scenario's sample under uncertainty (CONTRACT section 8): its "
        "draws (and fresh draws) x projects; over it, 413 before anything is built")
    deadline_grace_s: float = Field(
        15.0, ge=0,
        description="hard wall-clock deadline = 2 x time limit (solve + diagnosis) + this "
        "(optimizer.deadlines)")
    hard_deadline_s: float | None = Field(
        None, gt=0, description="absolute hard deadline per solve, overriding the formula")
    max_body_bytes: int = Field(20_000_000, gt=0, description="larger request bodies get 413")
    default_projects: Path = Field(Path(__file__).resolve().parent.parent / "inputs"
                                   / "projects.csv", description="the default dataset")
    retry_after_s: int = Field(5, ge=1, description="Retry-After when all workers are busy")
    batch_workers: int = Field(1, ge=1, le=64,
                               description="worker processes for batches (separate from the "
                               "interactive solvers, at lower CPU priority)")
    batch_concurrency: int = Field(1, ge=1, le=16, description="batches run at once")
    batch_max_rows: int = Field(100_000, ge=1, description="largest batch accepted (rows)")
    batch_poll_s: float = Field(1.0, gt=0, description="how often queued batches are looked for")
    batch_heartbeat_s: float = Field(2.0, gt=0, description="a running batch's heartbeat")
    batch_stale_after_s: float = Field(
        10.0, gt=0, description="a running batch without a heartbeat this long is resumed "
        "by another server (its own was killed)")
    dataset_cache_dir: Path | None = Field(
        None, description="where datasets are written once for the workers to read "
        "(default: a private temporary directory, removed at shutdown)")

    def deadline_for(self, time_limit_s: float, extra_s: float = 0.0) -> float:
        """The hard deadline of a solve (or of work with its own budget ``extra_s`` on top):
        the library's formula, or ``OPTIMIZER_HARD_DEADLINE_S`` when set."""
        if self.hard_deadline_s is not None:
            return self.hard_deadline_s
        return hard_deadline_s(time_limit_s, self.deadline_grace_s, extra_s=extra_s)


@lru_cache
def get_settings() -> Settings:
    return Settings()
