"""Request and response bodies of the HTTP API (separate from the library's own models)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from optimizer.schema import Result, Scenario

DATASET_ID = r"^[0-9a-f]{64}$"
RUN_ID = r"^[0-9a-f]{32}$"


def _no_nul(value: str) -> str:
    """Text with a NUL character is refused here: PostgreSQL cannot store it, and no name
    or key needs one."""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (\\u0000)")
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
# Responses always carry every field (defaults included), so their schemas mark all as
# required; request bodies keep only what a client must send as required.
OUT = ConfigDict(json_schema_serialization_defaults_required=True)


class Out(BaseModel):
    model_config = OUT
EXAMPLE_ROW = {
    "project_id": "MW-SONGWE-KABIL", "name": "Songwe Hill - KABIL-led", "country": "MW",
    "mineral": "ree", "partner": "KABIL", "india_share": 0.8, "equity_value_musd": 478.9,
    "min_stake": 0.1, "max_stake": 0.26, "deal_cost_musd": 2.5, "npv_musd": 167.7,
    "output_tantalum_t": 0, "output_niobium_t": 0, "output_ree_t": 5954, "risk_score": 6,
    "china_processing": False, "source": "Mkango DFS 2022; estimates per inputs/README.md",
}


class OptimizeRequest(BaseModel):
    """One scenario on the shipped dataset, on rows sent inline, or on a stored dataset."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"scenario": {"name": "base", "budget_musd": 2000, "kabil_budget_musd": 1000,
                      "max_country_share": 0.3, "min_countries": 4, "max_avg_risk": 6}},
        {"scenario": {"budget_musd": 100}, "projects": [EXAMPLE_ROW]},
    ]})

    scenario: Scenario
    projects: list[dict[str, Any]] | None = Field(
        None, max_length=200_000, description="candidate rows (CONTRACT section 1); "
        "absent: dataset_id, or the shipped dataset")
    dataset_id: str | None = Field(None, pattern=DATASET_ID,
                                   description="a dataset stored with POST /datasets")

    @model_validator(mode="before")
    @classmethod
    def _bare_scenario(cls, data: Any) -> Any:
        """A scenario sent on its own (without ``{"scenario": ...}``) is one mistake, said
        once, instead of "missing" plus an "unknown field" for each of its fields."""
        if isinstance(data, dict) and "scenario" not in data and data and \
                set(data) - set(cls.model_fields) and set(data) & set(Scenario.model_fields):
            raise ValueError('this looks like a bare scenario: send it as {"scenario": {...}} '
                             '(optionally with "projects" or "dataset_id" beside it)')
        return data


class RunResult(Result):
    """The result object plus where it is stored."""

    model_config = OUT

    run_id: str
    created_at: datetime | None = None
    dataset_id: str | None = None
    scenario: dict[str, Any] | None = Field(None, description="the scenario as solved "
                                            "(defaults filled, time limit capped)")
    created_by: str | None = Field(None, description="name of the key that made it")


class RunSummary(Out):
    run_id: str
    created_at: datetime
    scenario_name: str
    status: str
    objective: float | None
    dataset_id: str
    created_by: str | None = None


class RunPage(Out):
    items: list[RunSummary]
    total: int
    limit: int
    offset: int


class DatasetJSON(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"name": "my shortlist", "projects": [EXAMPLE_ROW]}]})

    name: Text = Field("", max_length=200)
    projects: list[dict[str, Any]] = Field(min_length=1, max_length=200_000)


class DatasetInfo(Out):
    dataset_id: str
    name: str
    n_projects: int
    created_at: datetime
    created: bool | None = None
    created_by: str | None = None


class DatasetDetail(DatasetInfo):
    projects: list[dict[str, Any]]


class DatasetPage(Out):
    items: list[DatasetInfo]
    total: int
    limit: int
    offset: int


class BatchAccepted(Out):
    batch_id: str
    status: str
    total: int
    links: dict[str, str]


class BatchStatus(Out):
    batch_id: str
    name: str
    kind: str
    status: str = Field(description="queued, running, done, cancelled or failed")
    total: int
    done: int
    failed: int
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    dataset_id: str
    summary: dict[str, Any] | None = None
    error: str | None = None
    created_by: str | None = None


class BatchPage(Out):
    items: list[BatchStatus]
    total: int
    limit: int
    offset: int


class ShareRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expires_in_s: float | None = Field(
        None, gt=0, allow_inf_nan=False,
        description="life of the link in seconds (default OPTIMIZER_SHARE_TTL_S; at most "
        "OPTIMIZER_SHARE_MAX_TTL_S)")


class ShareCreated(Out):
    url: str = Field(description="opens the report (HTML) in a browser, without a key")
    xlsx_url: str = Field(description="the same report as an Excel workbook")
    expires: datetime
    share_id: str = Field(description="DELETE /shares/{share_id} revokes the link")


class ShareInfo(Out):
    share_id: str
    kind: str
    target: str
    created_at: datetime
    created_by: str | None
    expires: datetime
    revoked_at: datetime | None


class Deleted(Out):
    deleted: str = Field(description="what was deleted: run, dataset or batch")
    id: str
    runs: int = Field(0, description="runs deleted with it (a dataset's cascade)")
    batches: int = Field(0, description="batches deleted with it (a dataset's cascade)")
