"""Derive ``inputs/projects.csv`` from the sourced facts tables in ``inputs/facts/``.

    python inputs/build_projects.py --out PATH      (default: inputs/projects.csv)

Every number of the output is either a figure of ``facts/figures.csv`` (a fact with its source,
or a judgement with its rule) or follows from figures by one of the rules of ``inputs/README.md``
(rule ids in brackets below). The ``source`` cell of each row names the figure ids used and shows
the arithmetic. Only the standard library and pandas are used; the output is deterministic
(fixed row order, fixed number formatting), so re-running reproduces the shipped CSV byte for
byte (``tests/test_data_quality.py`` checks it).
"""

from __future__ import annotations

import argparse
import csv
import io
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
FACTS = HERE / "facts"
DEFAULT_OUT = HERE / "projects.csv"

COLUMNS = [
    "project_id",
    "name",
    "country",
    "mineral",
    "partner",
    "india_share",
    "equity_value_musd",
    "min_stake",
    "max_stake",
    "deal_cost_musd",
    "npv_musd",
    "output_tantalum_t",
    "output_niobium_t",
    "output_ree_t",
    "output_ndpr_t",
    "output_dytb_t",
    "risk_score",
    "china_processing",
    "chinese_ownership",
    "conflict_affected",
    "as_of",
    "study_level",
    "exclusive_group",
    "requires",
    "spend_share_1",
    "spend_share_2",
    "spend_share_3",
    "stage",
    "operator",
    "region",
    "first_production_year",
    "source",
]

# Fixed samples behind the analogy rules (README: E4, O5).
REE_INTENSITY_SAMPLE = ("SONGWE", "KANGANKUNDE", "NGUALLA", "MAKUUTU", "LOFDAL", "LONGONJO")
NB_SAMPLE = ("KANYIKA", "ELKCREEK")
TA_INTENSITY_ASSET = "RUBAYA"
PUBLISHED_BASKET_RULES = ("F", "SHARE", "SHAREOF", "SUM")  # M1 samples: baskets from figures
# N2 values without a dated figure rest on the USGS 2024 deck, published in MCS 2025 (Jan 2025)
USGS_DECK_DATE = "2025-01"


# ------------------------------------------------------------------------------ formatting
def num(x: float, nd: int = 1) -> str:
    """Deterministic number text: rounded to ``nd`` decimals, no trailing zeros, no '-0'."""
    s = f"{round(float(x), nd):.{nd}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def af(rate: float, years: float) -> float:
    """Annuity factor: present value of 1 a year for ``years`` years at ``rate``."""
    return (1 - (1 + rate) ** -years) / rate


# ------------------------------------------------------------------------------ loading
def read(name: str) -> pd.DataFrame:
    return pd.read_csv(FACTS / name, dtype=str, keep_default_na=False, na_filter=False)


@dataclass
class Facts:
    params: dict[str, float]
    stages: dict[str, dict]
    countries: dict[str, float]
    usgs: dict[tuple[str, str], float]
    figures: dict[str, dict]
    assets: list[dict]
    deals: list[dict]

    def fig(self, fid: str) -> dict:
        if fid not in self.figures:
            raise KeyError(f"unknown figure id {fid!r}")
        return self.figures[fid]

    def val(self, fid: str) -> float:
        return float(self.fig(fid)["value"])

    def musd(self, fid: str) -> float:
        """A money figure in million US$ (C3 rates)."""
        f = self.fig(fid)
        rate = {
            "MUSD": 1.0,
            "MAUD": self.params["usd_per_aud"],
            "MEUR": self.params["usd_per_eur"],
            "MZAR": self.params["usd_per_zar"],
        }[f["unit"]]
        return float(f["value"]) * rate


def load() -> Facts:
    params = {r["name"]: float(r["value"]) for r in read("parameters.csv").to_dict("records")}
    stages = {r["stage_class"]: r for r in read("stages.csv").to_dict("records")}
    countries = {
        r["iso2"]: float(r["country_risk"]) for r in read("countries.csv").to_dict("records")
    }
    usgs = {
        (r["iso2"], r["mineral"]): float(r["production_2024"])
        for r in read("usgs_2024.csv").to_dict("records")
    }
    figs = read("figures.csv").to_dict("records")
    figures = {}
    for r in figs:
        if r["figure_id"] in figures:
            raise ValueError(f"duplicate figure id {r['figure_id']}")
        figures[r["figure_id"]] = r
    return Facts(
        params,
        stages,
        countries,
        usgs,
        figures,
        read("assets.csv").to_dict("records"),
        read("deals.csv").to_dict("records"),
    )


def parse_rule(spec: str) -> tuple[str, list[str]]:
    head, _, tail = spec.partition(":")
    return head, [a for a in tail.split(",") if a] if tail else []


# ------------------------------------------------------------------------------ per-asset state
@dataclass
class Asset:
    row: dict
    out: dict[str, float] = field(default_factory=dict)  # ta, nb, ree, ndpr, dytb
    figs: list[str] = field(default_factory=list)  # figure ids used, in order
    notes: list[str] = field(default_factory=list)  # derivation text, in order

    @property
    def id(self) -> str:
        return self.row["asset_id"]

    def use(self, *fids: str) -> None:
        for f in fids:
            if f not in self.figs:
                self.figs.append(f)


OXIDE = {"ta": "Ta2O5", "nb": "Nb2O5", "ree": "TREO", "ndpr": "NdPr oxide", "dytb": "Dy+Tb oxide"}
MINERAL_OF = {"ta": "tantalum", "nb": "niobium", "ree": "ree"}


class Builder:
    def __init__(self, facts: Facts):
        self.f = facts
        self.p = facts.params
        self.assets = {r["asset_id"]: Asset(r) for r in facts.assets}
        self.tau = self._tax_factor()

    # -------------------------------------------------------------- T1: tax factor
    def _tax_factor(self) -> float:
        """Median post-tax/pre-tax NPV ratio of the studies that publish both at one rate (T1)."""
        ratios = []
        for a in self.f.assets:
            figs = [r for r in self.f.figures.values() if r["asset_id"] == a["asset_id"]]
            post = [r for r in figs if r["quantity"] == "npv" and r["tax_basis"] == "post-tax"]
            pre = [r for r in figs if r["quantity"] == "npv_pretax"]
            for x in post:
                for y in pre:
                    if x["discount_rate"] == y["discount_rate"] and x["study"] == y["study"]:
                        ratios.append(float(x["value"]) / float(y["value"]))
        self.tau_sample = ratios
        return statistics.median(ratios)

    # -------------------------------------------------------------- outputs (O rules)
    def usgs(self, iso: str, mineral: str) -> float:
        return self.f.usgs[(iso, mineral)]

    def oxide_factor(self, key: str) -> float:
        return {"ta": self.p["ta2o5_per_ta"], "nb": self.p["nb2o5_per_nb"], "ree": 1.0}[key]

    def output(self, a: Asset, key: str, spec: str) -> float | None:
        """Outputs that need no other asset (None: computed in a later pass)."""
        rule, args = parse_rule(spec)
        v = self.f.val
        unit = f"t/y {OXIDE[key]}"
        if rule == "Z":
            return 0.0
        if rule == "F":
            a.use(args[0])
            x = v(args[0])
            a.notes.append(f"{key} {num(x)} {self.f.fig(args[0])['unit']} = {args[0]} (O1)")
            return x
        if rule in ("MUL", "DIV", "MULDIV", "MID", "SUM"):
            a.use(*args)
            xs = [v(g) for g in args]
            x = {
                "MUL": lambda: _prod(xs),
                "DIV": lambda: xs[0] / xs[1],
                "MULDIV": lambda: xs[0] * xs[1] / xs[2],
                "MID": lambda: (xs[0] + xs[1]) / 2,
                "SUM": lambda: sum(xs),
            }[rule]()
            op = {"MUL": " x ", "DIV": " / ", "SUM": " + "}
            if rule == "MULDIV":
                expr = (f"{args[0]} {num(xs[0], 4)} x {args[1]} {num(xs[1], 4)} / "
                        f"{args[2]} {num(xs[2], 4)}")
            elif rule == "MID":
                expr = f"midpoint of {args[0]} {num(xs[0], 4)} and {args[1]} {num(xs[1], 4)}"
            else:
                expr = op[rule].join(f"{g} {num(y, 4)}" for g, y in zip(args, xs, strict=True))
            rid = {"MUL": "O2", "DIV": "O2", "MULDIV": "O6", "MID": "C4", "SUM": "O1"}[rule]
            a.notes.append(f"{key} = {expr} = {num(x)} {unit} ({rid})")
            return x
        if rule == "LB":
            a.use(args[0])
            x = v(args[0]) * self.p["kg_per_lb"] / 1000
            a.notes.append(
                f"{key} = {args[0]} {num(v(args[0]))} lb x 0.45359 kg/lb = {num(x)} {unit} (C3)"
            )
            return x
        if rule == "FENB":
            a.use(args[0])
            x = v(args[0]) * self.p["nb_in_fenb"] * self.p["nb2o5_per_nb"]
            a.notes.append(
                f"{key} = {args[0]} {num(v(args[0]))} t FeNb x 0.65 x 1.4305 = {num(x)} {unit} (C1)"
            )
            return x
        if rule == "TANT":
            a.use(args[0])
            x = v(args[0]) * self.p["tantalite_grade"]
            a.notes.append(
                f"{key} = {args[0]} {num(v(args[0]))} t tantalite x 30% Ta2O5 = "
                f"{num(x)} {unit} (C2)"
            )
            return x
        if rule == "USGS":
            share, iso, mineral = args
            a.use(share)
            base = self.usgs(iso, mineral)
            x = v(share) * base * self.oxide_factor(key)
            rid = self.f.fig(share)["rule"] or "O3"
            a.notes.append(
                f"{key} = {share} {num(v(share), 4)} x USGS 2024 {iso} {num(base)} t "
                f"x {num(self.oxide_factor(key), 4)} = {num(x)} {unit} ({rid})"
            )
            return x
        if rule == "O4":
            a.use(args[0])
            contained = v(args[0]) * self.oxide_factor(key) if key != "ta" else v(args[0])
            world = self.usgs("WORLD", MINERAL_OF[key]) * self.oxide_factor(key)
            x = min(self.p["o4_capacity_ratio"] * contained, self.p["o4_world_cap"] * world)
            a.notes.append(
                f"{key} = min(1.75% x {args[0]} {num(contained)} t contained, 10% x world "
                f"{num(world)} t) = {num(x)} {unit} (O4)"
            )
            return x
        return None  # O5, M1, REST, MAGREST: later passes

    def outputs(self) -> None:
        keys = (("ta", "ta_rule"), ("nb", "nb_rule"), ("ree", "ree_rule"))
        for a in self.assets.values():
            for key, col in keys:
                x = self.output(a, key, a.row[col])
                if x is not None:
                    a.out[key] = x
        # O5: a project without a study is sized like the median Nb development project
        nb_median = statistics.median(self.assets[i].out["nb"] for i in NB_SAMPLE)
        for a in self.assets.values():
            if a.row["nb_rule"] == "O5NB":
                a.out["nb"] = nb_median
                a.notes.append(
                    f"nb = median Nb2O5 of {', '.join(NB_SAMPLE)} = {num(nb_median)} t/y Nb2O5 (O5)"
                )
            rule, args = parse_rule(a.row["ree_rule"])
            if rule == "O5REE":
                a.use(*args)
                x = a.out["nb"] * self.f.val(args[0]) / self.f.val(args[1])
                a.out["ree"] = x
                a.notes.append(
                    f"ree = nb {num(a.out['nb'])} x {args[0]} / {args[1]} (resource ratio) "
                    f"= {num(x)} t/y TREO (O5)"
                )
        # published magnet baskets first (they are the M1 samples)
        for a in self.assets.values():
            for key in ("dytb", "ndpr"):
                rule, args = parse_rule(a.row[f"{key}_rule"])
                ree = a.out["ree"]
                if rule in ("Z", "F", "SUM", "MUL"):
                    a.out[key] = self.output(a, key, a.row[f"{key}_rule"])
                elif rule == "SHARE":
                    a.use(args[0])
                    a.out[key] = self.f.val(args[0]) * ree
                    a.notes.append(
                        f"{key} = {args[0]} {num(self.f.val(args[0]), 4)} x ree {num(ree)} "
                        f"= {num(a.out[key])} t/y (M0)"
                    )
                elif rule == "SHAREOF":
                    a.use(*args)
                    share = self.f.val(args[0]) / self.f.val(args[1])
                    a.out[key] = share * ree
                    a.notes.append(
                        f"{key} = ree {num(ree)} x {args[0]} / {args[1]} "
                        f"({num(share, 4)}) = {num(a.out[key])} t/y (M0)"
                    )
        self.shares = {k: self._sample(k) for k in ("ndpr", "dytb")}
        for a in self.assets.values():  # M1 rules (defaults), then remainders
            rule, args = parse_rule(a.row["dytb_rule"])
            if rule in ("M1", "M1CAP", "M1X"):
                share, how = self.default_share("dytb", args[0])
                base = a.out["ree"]
                text = f"ree {num(base)}"
                if rule == "M1X":
                    a.use(args[1], args[2])
                    ratio = self.f.val(args[1]) / self.f.val(args[2])
                    base = base * ratio
                    text = (
                        f"TREO processed {num(base)} (= ree x {args[1]} / {args[2]} = "
                        f"x {num(ratio, 4)})"
                    )
                x = share * base
                if rule == "M1CAP":
                    a.use(args[1])
                    x = min(x, self.f.val(args[1]))
                    text += f", capped at {args[1]} {num(self.f.val(args[1]))}"
                a.out["dytb"] = x
                a.notes.append(f"dytb = {how} {num(share, 4)} x {text} = {num(x)} t/y (M1)")
            rule, args = parse_rule(a.row["ndpr_rule"])
            if rule == "M1":
                share, how = self.default_share("ndpr", args[0])
                a.out["ndpr"] = share * a.out["ree"]
                a.notes.append(
                    f"ndpr = {how} {num(share, 4)} x ree {num(a.out['ree'])} "
                    f"= {num(a.out['ndpr'])} t/y (M1)"
                )
            elif rule == "REST":
                a.out["ndpr"] = a.out["ree"] - a.out["dytb"]
                a.notes.append(
                    f"ndpr = ree {num(a.out['ree'])} - dytb {num(a.out['dytb'])} "
                    f"= {num(a.out['ndpr'])} t/y (M2: magnet-oxide product)"
                )
            elif rule == "MAGREST":
                a.use(*args)
                mag = a.out["ree"] * self.f.val(args[0]) / self.f.val(args[1])
                a.out["ndpr"] = mag - a.out["dytb"]
                a.notes.append(
                    f"ndpr = ree {num(a.out['ree'])} x {args[0]} / {args[1]} - dytb "
                    f"{num(a.out['dytb'])} = {num(a.out['ndpr'])} t/y (M2)"
                )
        for a in self.assets.values():
            for k in ("ta", "nb", "ree", "ndpr", "dytb"):
                if k not in a.out:
                    raise ValueError(f"{a.id}: no rule produced output {k}")
            if a.out["ndpr"] + a.out["dytb"] > a.out["ree"] + 1e-9:
                raise ValueError(f"{a.id}: ndpr + dytb exceed ree")

    def _sample(self, key: str) -> dict[str, list[tuple[str, float]]]:
        """Published shares of TREO by deposit type (the M1 samples)."""
        out: dict[str, list[tuple[str, float]]] = {}
        for a in self.assets.values():
            rule, _ = parse_rule(a.row[f"{key}_rule"])
            group = a.row["deposit_type"]
            if (
                rule in PUBLISHED_BASKET_RULES
                and a.row["mineral"] == "ree"
                and group
                and group != "producer_mix"
                and a.out.get("ree", 0) > 0
            ):
                out.setdefault(group, []).append((a.id, a.out[key] / a.out["ree"]))
        return out

    def default_share(self, key: str, group: str) -> tuple[float, str]:
        """M1: median published share of the deposit type; none published: the smallest share
        published for any type (conservative)."""
        sample = self.shares[key]
        if sample.get(group):
            vals = [s for _, s in sample[group]]
            ids = "+".join(i for i, _ in sample[group])
            return statistics.median(vals), f"median published {key} share of {group} ({ids})"
        allv = [(s, i) for g in sample.values() for i, s in g]
        s, i = min(allv)
        return s, f"no published {group} basket: smallest published {key} share ({i})"

    # -------------------------------------------------------------- value (N, E rules)
    def capex(self, a: Asset) -> float | None:
        rule, args = parse_rule(a.row["capex_rule"])
        if not rule:
            return None
        if rule == "F":
            a.use(args[0])
            x = self.f.musd(args[0])
            unit = self.f.fig(args[0])["unit"]
            conv = "" if unit == "MUSD" else f" ({num(self.f.val(args[0]))} {unit[1:]} m, C3)"
            a.notes.append(f"capex {num(x)} = {args[0]}{conv}")
            return x
        if rule == "MID":
            a.use(*args)
            x = (self.f.musd(args[0]) + self.f.musd(args[1])) / 2
            a.notes.append(f"capex {num(x)} = midpoint of {args[0]} and {args[1]} in US$ (C3, C4)")
            return x
        if rule == "E4TA":
            rub = self.assets[TA_INTENSITY_ASSET]
            k = self.capex_raw(rub) / rub.out["ta"]
            x = k * a.out["ta"]
            a.notes.append(
                f"capex = ta {num(a.out['ta'])} t x {num(k, 4)} musd/t (Rubaya restart "
                f"capex / Rubaya Ta2O5) = {num(x)} (E4)"
            )
            return x
        if rule == "E4NBREE":
            kn = statistics.median(
                self.capex_raw(self.assets[i]) / self.assets[i].out["nb"] * 1000 for i in NB_SAMPLE
            )
            kr = statistics.median(
                self.capex_raw(self.assets[i]) / self.assets[i].out["ree"] * 1000
                for i in REE_INTENSITY_SAMPLE
            )
            x = a.out["nb"] / 1000 * kn + a.out["ree"] / 1000 * kr
            a.notes.append(
                f"capex = nb {num(a.out['nb'] / 1000, 3)} kt x {num(kn)} + ree "
                f"{num(a.out['ree'] / 1000, 3)} kt x {num(kr)} musd per kt/y (median "
                f"intensities) = {num(x)} (E4)"
            )
            return x
        raise ValueError(f"{a.id}: unknown capex rule {rule}")

    def capex_raw(self, a: Asset) -> float:
        rule, args = parse_rule(a.row["capex_rule"])
        if rule == "F":
            return self.f.musd(args[0])
        if rule == "MID":
            return (self.f.musd(args[0]) + self.f.musd(args[1])) / 2
        raise ValueError(f"{a.id}: capex of rule {rule} is not a sample figure")

    def revenue(self, a: Asset) -> tuple[float, str]:
        p = self.p
        pay_ree = {
            "separated": p["payable_separated"],
            "mixed": p["payable_mixed"],
            "concentrate": p["payable_concentrate"],
            "": 0.0,
        }[a.row["ree_form"]]
        pay_nb = {"fenb": p["payable_separated"], "concentrate": p["payable_concentrate"], "": 0.0}[
            a.row["nb_form"]
        ]
        nb2o5_price = p["price_fenb"] / (p["nb_in_fenb"] * p["nb2o5_per_nb"])
        o = a.out
        ta = o["ta"] * p["price_ta2o5"] / 1000
        nb = o["nb"] * nb2o5_price / 1000 * pay_nb
        other = o["ree"] - o["ndpr"] - o["dytb"]
        ree = (
            (
                o["ndpr"] * p["price_ndpr"]
                + o["dytb"] * p["price_dytb"]
                + other * p["price_other_reo"]
            )
            / 1000
            * pay_ree
        )
        parts = []
        if ta:
            parts.append(f"Ta2O5 {num(o['ta'])} t x 170 $/kg")
        if nb:
            parts.append(f"Nb2O5 {num(o['nb'])} t x {num(nb2o5_price, 2)} $/kg x {num(pay_nb, 2)}")
        if ree:
            parts.append(
                f"(NdPr {num(o['ndpr'])} x 56 + DyTb {num(o['dytb'])} x 260 + other "
                f"{num(other)} x 2 $/kg) x {num(pay_ree, 2)}"
            )
        return ta + nb + ree, " + ".join(parts)

    def value(self, a: Asset) -> dict:
        p, st = self.p, self.f.stages[a.row["stage_class"]]
        s = float(st["s_stage"])
        years = int(st["years_to_first_output"])
        r = p["discount_rate"]
        res = {"s": s, "years": years}
        capex = self.capex(a)
        res["capex"] = capex
        rule, args = parse_rule(a.row["value_rule"])
        if rule == "N1":
            res["npv_norm"] = self.normalise(a, args[0], capex)
        elif rule in ("N2", "N2P"):
            rev, how = self.revenue(a)
            margin = p["margin_" + a.row["margin_class"]]
            life = p["life_long"] if a.row["n2_life_class"] == "long" else p["life_default"]
            v = rev * margin * af(r, life) * (1 + r) ** -years
            res["v"] = v
            a.notes.append(
                f"N2: revenue {num(rev)} musd/y [{how}; USGS 2024 deck] x margin "
                f"{num(margin, 2)} x AF(8%, {num(life, 0)} y) {num(af(r, life), 3)} x "
                f"1.08^-{years} = V {num(v)}"
            )
            if rule == "N2":
                res["npv_norm"] = v - capex
                a.notes.append(f"synthetic NPV = V - capex = {num(res['npv_norm'])} (N2)")
        elif rule == "N0":
            pass
        else:
            raise ValueError(f"{a.id}: unknown value rule {rule}")
        if "npv_norm" in res:
            n = res["npv_norm"]
            res["npv_adj"] = n * s if n > 0 else n
            a.notes.append(
                f"stage-risked NPV = {num(n)} x s {num(s, 2)} = {num(res['npv_adj'])} (N1 s_stage)"
                if n > 0
                else f"negative NPV: no stage haircut ({num(n)})"
            )
        self.equity(a, res)
        return res

    def normalise(self, a: Asset, fid: str, capex: float) -> float:
        """N1: a published NPV to the one basis (real, post-tax, 8 %), with the age factor."""
        f = self.f.fig(fid)
        a.use(fid)
        p = self.p
        npv = self.f.musd(fid)
        r = float(f["discount_rate"])
        life = float(f["life_years"]) if f["life_years"] else p["life_default"]
        steps = [
            f"{fid} {num(npv)} musd ({f['tax_basis']}, {num(r * 100, 2)}% {f['rate_basis']}, "
            f"{f['study']} {f['study_date']}, life {num(life, 0)} y"
            + ("" if f["life_years"] else " (default)")
            + ")"
        ]
        if f["rate_basis"] == "nominal":
            r = (1 + r) / (1 + p["inflation"]) - 1
            steps.append(f"real rate {num(r * 100, 2)}% (B1)")
        base = p["discount_rate"]
        if abs(r - base) > 1e-12 and not f["life_years"]:
            # B2 assumes level cash flows over a known life; without a published life the profile
            # is unknown (a front-loaded PEA gains ~40 % from it): keep the study rate's NPV.
            steps.append(
                f"not moved to 8%: study life not published, cash-flow profile unknown "
                f"(B2 not applied; the NPV at {num(r * 100, 2)}% is a lower bound)"
            )
        elif abs(r - base) > 1e-12:
            ratio = af(base, life) / af(r, life)
            npv = (npv + capex) * ratio - capex
            steps.append(
                f"to 8%: (NPV + capex {num(capex)}) x AF(8%)/AF({num(r * 100, 2)}%) "
                f"{num(ratio, 4)} - capex = {num(npv)} (B2)"
            )
        tax = {"post-tax": 1.0, "pre-tax": self.tau, "unstated": (1 + self.tau) / 2}[f["tax_basis"]]
        if tax != 1.0 and npv > 0:
            npv *= tax
            steps.append(f"x tax factor {num(tax, 4)} ({f['tax_basis']}; T1) = {num(npv)}")
        year = int(f["study_date"][:4])
        if p["base_year"] - year > p["old_study_years"]:
            npv *= p["age_factor"]
            steps.append(f"x age {num(p['age_factor'], 2)} (study {year}; A1) = {num(npv)}")
        a.notes.append("N1: " + "; ".join(steps) + f"; price deck: {f['price_deck']}")
        return npv

    def equity(self, a: Asset, res: dict) -> None:
        p = self.p
        rule, args = parse_rule(a.row["equity_rule"])
        capex, s = res["capex"], res["s"]
        if rule == "E1":
            prem = p["premium_share"] * s * max(res["npv_norm"], 0.0)
            eq = capex + prem
            a.notes.append(
                f"equity = capex {num(capex)} + 0.5 x s {num(s, 2)} x max(NPV, 0) "
                f"{num(max(res['npv_norm'], 0.0))} = {num(eq)} (E1)"
            )
        elif rule == "E1T":
            a.use(*args)
            price = self.f.musd(args[0])
            stake = self.f.val(args[1]) if len(args) > 1 else 1.0
            prem = price / stake
            eq = capex + prem
            a.notes.append(
                f"equity = capex {num(capex)} + observed price of 100% {num(prem)} "
                f"({args[0]} {num(price)} musd / stake {num(stake, 4)}) = {num(eq)} (E1T)"
            )
        elif rule == "E2":
            a.use(*args)
            eq = self.f.musd(args[0]) / self.f.val(args[1])
            a.notes.append(
                f"equity = {args[0]} {num(self.f.musd(args[0]))} / {args[1]} "
                f"{num(self.f.val(args[1]), 4)} = {num(eq)} (E2)"
            )
        elif rule == "E3":
            eq = p["producer_discount"] * res["v"]
            a.notes.append(f"equity = 0.9 x V = {num(eq)} (E3)")
        elif rule == "E5":
            a.use(args[0])
            eq = self.f.musd(args[0])
            a.notes.append(
                f"equity = market cap {args[0]} {num(self.f.val(args[0]))} AUD m x 0.65 "
                f"= {num(eq)} (E5)"
            )
        elif rule == "E6":
            a.use(args[0])
            eq = self.f.musd(args[0])
            a.notes.append(f"equity = capital invested {args[0]} = {num(eq)} (E6)")
        elif rule == "E7":
            a.use(args[0])
            debt = self.f.musd(args[0])
            eq = max(p["producer_discount"] * res["v"], debt)
            a.notes.append(
                f"equity = max(0.9 x V {num(p['producer_discount'] * res['v'])}, committed "
                f"debt {args[0]} {num(debt)}) = {num(eq)} (E7)"
            )
        else:
            raise ValueError(f"{a.id}: unknown equity rule {rule}")
        res["equity"] = eq
        if parse_rule(a.row["value_rule"])[0] == "N0":
            res["npv"] = 0.0
            a.notes.append("npv = 0 (N0: value mostly in tin/tungsten, price taken as fair)")
        elif capex is not None:
            res["npv"] = capex + res["npv_adj"] - eq
            a.notes.append(f"npv = capex + stage-risked NPV - equity = {num(res['npv'])} (N3)")
        else:
            res["npv"] = res["v"] - eq
            a.notes.append(f"npv = V - equity = {num(res['npv'])} (N3)")

    def as_of(self, a: Asset) -> str:
        """Date of the oldest dated figure the row's value and price come from (capex, value and
        equity rules); the USGS deck's date when none is dated."""
        dates = []
        for col in ("capex_rule", "value_rule", "equity_rule"):
            for fid in parse_rule(a.row[col])[1]:
                d = self.f.fig(fid)["study_date"]
                if d:
                    if len(d) < 7:
                        raise ValueError(f"{fid}: study_date {d!r} needs a month (YYYY-MM)")
                    dates.append(d)
        return min(dates) if dates else USGS_DECK_DATE

    def risk(self, a: Asset) -> tuple[float, str]:
        st = self.f.stages[a.row["stage_class"]]
        c = self.f.countries[a.row["country"]]
        g = float(st["stage_risk"])
        e = float(a.row["esg_addon"])
        total = min(self.p["risk_cap"], c + g + e)
        esg = f" [{a.row['esg_basis']}]" if a.row["esg_basis"] else ""
        cap = ", capped at 10" if c + g + e > self.p["risk_cap"] else ""
        return total, (
            f"risk = country {num(c, 2)} + stage {num(g, 2)} + ESG {num(e, 2)}{esg}{cap} (R1-R3)"
        )

    def sources(self, a: Asset) -> str:
        """Where each figure of the row comes from (address, or why there is none), grouped by
        source so that a reviewer reaches every figure's document from the row in one step."""
        by_src: dict[str, list[str]] = {}
        for fid in a.figs:
            by_src.setdefault(self.f.fig(fid)["source"], []).append(fid)
        return "; ".join(f"{'+'.join(ids)}: {src}" for src, ids in by_src.items())

    def estimates(self, a: Asset) -> list[str]:
        """The numbers of an asset that are estimates (not published), each with its rule."""
        r = a.row
        out = []
        for key in ("ta", "nb", "ree", "ndpr", "dytb"):
            rule, args = parse_rule(r[f"{key}_rule"])
            judged = [g for g in args if g in self.f.figures
                      and self.f.figures[g]["kind"] == "judgement"]
            if rule in ("M1", "M1CAP", "M1X", "O4", "O5NB", "O5REE"):
                out.append(f"{key} ({'O5' if rule.startswith('O5') else rule[:2]})")
            elif rule in ("REST", "MAGREST") and parse_rule(r["dytb_rule"])[0].startswith("M1"):
                out.append(f"{key} (M2 after M1)")
            elif judged:
                out.append(f"{key} ({self.f.figures[judged[0]]['rule']} judgement {judged[0]})")
        if parse_rule(r["capex_rule"])[0].startswith("E4"):
            out.append("capex (E4)")
        vrule = parse_rule(r["value_rule"])[0]
        if vrule in ("N2", "N2P"):
            out.append("value (N2, USGS prices)")
        erule, eargs = parse_rule(r["equity_rule"])
        judged = [g for g in eargs if self.f.figures[g]["kind"] == "judgement"]
        if erule in ("E1", "E3") or judged:
            out.append(f"equity ({erule})")
        if r["chinese_ownership_kind"] == "estimate":
            out.append("chinese_ownership (CH2)")
        return out

    # -------------------------------------------------------------- rows
    def build(self) -> list[dict]:
        self.outputs()
        vals = {i: self.value(a) for i, a in self.assets.items()}
        rows = []
        for d in self.f.deals:
            a = self.assets[d["asset_id"]]
            r = a.row
            v = vals[a.id]
            st = self.f.stages[r["stage_class"]]
            risk, risk_text = self.risk(a)
            max_stake = float(d["max_stake"])
            rate = (
                self.p["deal_cost_rate_high_risk"]
                if risk >= self.p["high_risk"]
                else self.p["deal_cost_rate"]
            )
            deal_cost = max(self.p["deal_cost_min"], round(rate * v["equity"] * max_stake, 1))
            years = int(st["years_to_first_output"])
            first = "" if years == 0 else str(int(self.p["base_year"]) + years)
            lo, hi = float(d["min_stake"]), float(d["max_stake"])
            name = f"{r['asset_name']} - {d['deal_label']} {num(lo * 100, 0)}-{num(hi * 100, 0)}%"
            source = (
                "figures: "
                + ", ".join(a.figs)
                + " (facts/figures.csv) | sources: "
                + self.sources(a)
                + " | estimates: "
                + (", ".join(self.estimates(a)) or "none")
                + " | "
                + "; ".join(a.notes)
                + f"; {risk_text}; deal cost = max(1, {num(rate * 100, 0)}% x equity x "
                "max_stake) (D1); "
                f"spend shares and first year by stage '{r['stage_class']}' (S1, Y1); "
                f"china_processing: {r['china_processing_basis']} (CP1); chinese_ownership "
                f"{num(float(r['chinese_ownership']), 4)}: {r['chinese_ownership_basis']} (CH1)"
                + (f"; note: {r['notes']}" if r["notes"] else "")
                + (
                    ""
                    if not d["requires"]
                    else f"; requires {d['requires']}: {d['requires_basis']}"
                )
            )
            rows.append(
                {
                    "project_id": d["project_id"],
                    "name": name,
                    "country": r["country"],
                    "mineral": r["mineral"],
                    "partner": d["partner"],
                    "india_share": num(float(d["india_share"]), 4),
                    "equity_value_musd": num(v["equity"]),
                    "min_stake": num(lo, 4),
                    "max_stake": num(hi, 4),
                    "deal_cost_musd": num(deal_cost),
                    "npv_musd": num(v["npv"]),
                    "output_tantalum_t": num(a.out["ta"]),
                    "output_niobium_t": num(a.out["nb"]),
                    "output_ree_t": num(a.out["ree"]),
                    "output_ndpr_t": num(a.out["ndpr"]),
                    "output_dytb_t": num(a.out["dytb"]),
                    "risk_score": num(risk, 2),
                    "china_processing": r["china_processing"],
                    "chinese_ownership": num(float(r["chinese_ownership"]), 4),
                    "conflict_affected": r["conflict_affected"],
                    "as_of": self.as_of(a),
                    "study_level": r["study_level"],
                    "exclusive_group": d["exclusive_group"],
                    "requires": d["requires"],
                    "spend_share_1": num(float(st["spend_share_1"]), 4),
                    "spend_share_2": num(float(st["spend_share_2"]), 4),
                    "spend_share_3": num(float(st["spend_share_3"]), 4),
                    "stage": f"{r['stage_text']} ({r['stage_class']})",
                    "operator": r["operator"],
                    "region": r["region"],
                    "first_production_year": first,
                    "source": source,
                }
            )
        return rows


def _prod(xs: list[float]) -> float:
    out = 1.0
    for x in xs:
        out *= x
    return out


def render(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def build_text() -> str:
    return render(Builder(load()).build())


def summary(rows: list[dict], facts: Facts) -> str:
    """The per-asset table of inputs/README.md (one line per asset, values per 100 % stake)."""
    assets = {a["asset_id"]: a for a in facts.assets}
    asset_of = {d["project_id"]: d["asset_id"] for d in facts.deals}
    lines, seen = [], {}
    for r in rows:
        seen.setdefault(asset_of[r["project_id"]], []).append(r)
    for aid, rs in seen.items():
        r, a = rs[0], assets[aid]
        ids = ", ".join(f"`{x['project_id']}`" for x in rs)
        out = " / ".join(
            r[c]
            for c in (
                "output_tantalum_t",
                "output_niobium_t",
                "output_ree_t",
                "output_ndpr_t",
                "output_dytb_t",
            )
        )
        rules = f"{a['value_rule'].split(':')[0]}, {a['equity_rule'].split(':')[0]}"
        lines.append(
            f"| {a['asset_name']} | {r['country']} | {ids} | {r['equity_value_musd']} | "
            f"{r['npv_musd']} | {out} | {r['risk_score']} | {r['china_processing']} | "
            f"{r['chinese_ownership']} | {rules} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the CSV")
    ap.add_argument(
        "--summary",
        action="store_true",
        help="print the per-asset table of inputs/README.md instead of writing the CSV",
    )
    args = ap.parse_args(argv)
    if args.summary:
        facts = load()
        print(summary(Builder(facts).build(), facts), end="")
        return 0
    text = build_text()
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out} ({text.count(chr(10)) - 1} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
