#!/usr/bin/env bash
# scripts/check-manifests.sh — validates what can be validated of deploy/ without a cluster or
# a Docker engine: every Kubernetes manifest parses as YAML and names its kind, apiVersion and
# name; the Deployment's probes, volumes and secret keys point at what exists; its grace period
# outlasts the worker's --shutdown-timeout; the ConfigMap's app passes `faust-rs check`; the
# Prometheus rules in deploy/prometheus/ are rule groups (their PromQL is parsed by a unit test
# of src/worker/metrics.rs). CI runs it. Needs python3 with PyYAML (scripts/deps.sh) and the
# debug binary (built if missing).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin=${FAUST_RS:-target/debug/faust-rs}
[[ -x $bin ]] || cargo build --quiet
app=$(mktemp --suffix=.toml)
trap 'rm -f "$app"' EXIT

python3 - "$app" deploy/kubernetes/*.yaml <<'PY'
import sys
import yaml

app_out, paths = sys.argv[1], sys.argv[2:]
docs = {}
for path in paths:
    for doc in yaml.safe_load_all(open(path)):
        for key in ("apiVersion", "kind"):
            assert doc.get(key), f"{path}: no {key}"
        name = doc.get("metadata", {}).get("name")
        assert name, f"{path}: no metadata.name"
        docs[(doc["kind"], name)] = doc
config = docs[("ConfigMap", "faust-rs-app")]
secret = docs[("Secret", "faust-rs-secrets")]
deployment = docs[("Deployment", "faust-rs")]
spec = deployment["spec"]["template"]["spec"]
(worker,) = spec["containers"]
args = worker["args"]
grace = spec["terminationGracePeriodSeconds"]
shutdown = float(args[args.index("--shutdown-timeout") + 1])
assert grace > shutdown, f"terminationGracePeriodSeconds {grace} <= --shutdown-timeout {shutdown}"
assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
assert worker["readinessProbe"]["httpGet"]["path"] == "/ready"
for env in worker["env"]:
    ref = env.get("valueFrom", {}).get("secretKeyRef")
    if ref:
        assert ref["name"] == "faust-rs-secrets" and ref["key"] in secret["stringData"], env
volumes = {v["name"]: v for v in spec["volumes"]}
for mount in worker["volumeMounts"]:
    assert mount["name"] in volumes, mount
assert volumes["app"]["configMap"]["name"] == "faust-rs-app"
assert args[args.index("-A") + 1] == "/etc/faust-rs/app.toml"
open(app_out, "w").write(config["data"]["app.toml"])
print(f"check-manifests.sh: {len(docs)} manifests parse and agree with each other")
PY
KAFKA_PASSWORD=unused "$bin" -A "$app" check >/dev/null
echo "check-manifests.sh: the ConfigMap's app passes faust-rs check"
python3 - deploy/prometheus/*.yaml <<'PY'
import sys
import yaml

for path in sys.argv[1:]:
    rules = [r for g in yaml.safe_load(open(path))["groups"] for r in g["rules"]]
    for rule in rules:
        assert rule.get("alert") and rule.get("expr"), f"{path}: {rule}"
    print(f"check-manifests.sh: {path}: {len(rules)} alert rules")
PY
