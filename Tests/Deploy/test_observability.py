"""The Grafana dashboard and the Prometheus alert rules (Sources/examhub/Deploy/grafana, prometheus): they load,
every PromQL expression parses, and every metric they name is one a real hub exposes on /metrics (scraped after
some traffic), one of the outbox workers' three, or, for the readiness alert only, Prometheus' `up` and
kube-state-metrics. The rules pass `promtool check rules` and their unit tests (`promtool test rules`)."""
from __future__ import annotations

import re
import shutil
import subprocess

import promql_parser
import pytest
import yaml

from deploykit import DEPLOY, EXTERNAL_METRICS, OUTBOX_METRICS, dashboard, sample

RULES = DEPLOY / "prometheus" / "examhub-alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "examhub-alerts.test.yaml"
# Grafana's variables, replaced by what Grafana would put there.
GRAFANA_VARS = {"$__rate_interval": "1m", "$__interval": "1m", "$__range": "1h"}


def metric_names(expr: str) -> set[str]:
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    ast = promql_parser.parse(expr)
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name in {expr!r}"
            names.add(node.name)

    promql_parser.walk(ast, visit)
    assert names, f"no metric in {expr!r}"
    return names


def panels() -> list[dict]:
    out = []
    for p in dashboard()["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in panels() for t in p.get("targets", [])]


def rules() -> list[dict]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


# ----------------------------------------------------------------------------------------------- dashboard


def test_dashboard_is_a_well_formed_grafana_dashboard():
    d = dashboard()
    assert d["uid"] == "examhub-overview" and d["title"] == "ExamHub" and d["schemaVersion"] >= 36
    ids = [p["id"] for p in panels()]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels():
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, (p["title"], g)
        if p["type"] != "row":
            assert p["targets"], f"panel {p['title']!r} has no query"
            assert p["datasource"]["uid"] == "${datasource}"
            refs = [t["refId"] for t in p["targets"]]
            assert len(refs) == len(set(refs))
    variables = {v["name"]: v for v in d["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance"):
        metric_names(variables[name]["query"]["query"].replace("label_values(", "").rsplit(",", 1)[0])


def test_dashboard_covers_what_operators_watch():
    """Connections, messages in/out, save ack latency quantiles, flags, LLM latency and tokens, outbox lag."""
    exprs = " ".join(e for _, e in dashboard_exprs())
    for needle in ["examhub_connections_open", "examhub_messages_in_total", "examhub_messages_out_total",
                   "histogram_quantile(0.99, sum by (le) (rate(examhub_save_ack_seconds_bucket",
                   "examhub_flags_raised_total", "examhub_llm_first_token_seconds_bucket",
                   "examhub_llm_seconds_bucket", "examhub_llm_tokens_total", "examhub_outbox_lag_seconds",
                   "examhub_outbox_pending", "examhub_outbox_delivered_total"]:
        assert needle in exprs, f"the dashboard has no query with {needle}"


def test_every_dashboard_query_parses_and_names_only_metrics_the_hub_exports(scraped_metrics):
    exported = set(scraped_metrics) | OUTBOX_METRICS
    exprs = dashboard_exprs()
    assert len(exprs) >= 25
    for title, expr in exprs:
        unknown = metric_names(expr) - exported
        assert not unknown, f"panel {title!r} queries {unknown}, which no hub exports: {expr}"


def test_quantiles_are_taken_over_histogram_buckets(scraped_metrics):
    calls = 0
    for source in [e for _, e in dashboard_exprs()] + [r["expr"] for r in rules()]:
        for var, value in GRAFANA_VARS.items():
            source = source.replace(var, value)
        quantiles = []

        def visit(node):
            if isinstance(node, promql_parser.Call) and node.func.name == "histogram_quantile":
                quantiles.append(node)

        promql_parser.walk(promql_parser.parse(source), visit)
        for call in quantiles:
            calls += 1
            inner: set[str] = set()
            promql_parser.walk(call.args[1], lambda n: inner.add(n.name)
                               if isinstance(n, promql_parser.VectorSelector) else None)
            for n in inner:
                assert n.endswith("_bucket") and scraped_metrics.get(n) == "histogram", (n, source)
    assert calls >= 10


def test_the_ack_histogram_counts_the_save_and_the_gauge_the_sockets(scrape):
    """The series the alert and the HPA rest on move with real traffic: one acked save is one observation of
    examhub_save_ack_seconds (and one commit), and the sockets were counted open and then closed."""
    assert sample(scrape, "examhub_save_ack_seconds_count") == 1
    assert sample(scrape, "examhub_save_ack_seconds_bucket", 'le="+Inf"') == 1
    assert 0 < sample(scrape, "examhub_save_ack_seconds_sum") < 5
    assert sample(scrape, "examhub_save_commit_seconds_count") >= 1
    assert sample(scrape, "examhub_connections_total") >= 2
    assert sample(scrape, "examhub_connections_open") in (0, 1, 2)  # the last closes may still be in flight
    assert sample(scrape, "examhub_llm_tokens_total", 'kind="prompt"') == 0


# ----------------------------------------------------------------------------------------------- alerts


def test_alert_rules_cover_readiness_ack_latency_outbox_lag_and_llm_errors():
    by_name = {r["alert"]: r for r in rules()}
    assert {"ExamHubNoReadyNodes", "ExamHubSaveAckP99High", "ExamHubOutboxLagHigh",
            "ExamHubLLMErrorsHigh"} <= set(by_name)
    for r in by_name.values():
        assert r["labels"]["severity"] in {"critical", "warning"}, r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
    assert by_name["ExamHubNoReadyNodes"]["labels"]["severity"] == "critical"


def test_alert_expressions_name_only_real_metrics(scraped_metrics):
    exported = set(scraped_metrics) | OUTBOX_METRICS
    for r in rules():
        names = metric_names(r["expr"])
        allowed = exported | (EXTERNAL_METRICS if r["alert"] == "ExamHubNoReadyNodes" else set())
        assert not names - allowed, f"{r['alert']} queries {names - allowed}"


def _promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is missing: apt-get install prometheus (.ci/run installs it)"
    return path


def test_promtool_checks_the_rules():
    out = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(rules())} rules found" in out.stdout + out.stderr


def test_promtool_unit_tests_fire_each_alert_and_keep_quiet_when_healthy():
    out = subprocess.run([_promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True,
                         timeout=60, cwd=RULE_TESTS.parent)
    assert out.returncode == 0, out.stdout + out.stderr
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == {r["alert"] for r in rules()}, "every alert has a unit test"


@pytest.mark.parametrize("broken", ["rate(examhub_messages_in_total[5m]", "sum by (le (x)"])
def test_the_query_check_catches_a_broken_expression(broken):
    with pytest.raises(Exception):
        metric_names(broken)
