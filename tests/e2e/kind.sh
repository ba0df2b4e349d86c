#!/usr/bin/env bash
# End-to-end on kind: build the operator and simulator images, load them into a kind cluster, run
# the CloudFront simulator, install the chart pointed at it, apply examples/basic.yaml and wait until
# the invalidation is Completed.
#
# Needs docker, kind, kubectl and helm (the project's dev machines have no Docker engine:
# .github/workflows/e2e-kind.yaml runs it on a hosted runner).
#   tests/e2e/kind.sh                 create (or reuse) the cluster and leave it running
#   KIND_DELETE=1 tests/e2e/kind.sh   delete the cluster at the end
# KIND_CLUSTER (default cfinv-e2e) names the cluster, IMAGE (default cloudfront-invalidation-operator:e2e)
# the operator image, SIM_IMAGE (default cloudfront-sim:e2e) the simulator image.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

cluster="${KIND_CLUSTER:-cfinv-e2e}"
image="${IMAGE:-cloudfront-invalidation-operator:e2e}"
sim_image="${SIM_IMAGE:-cloudfront-sim:e2e}"
ns=cloudfront-invalidation-operator
distribution=EXAMPLEDIST01 # the distribution examples/basic.yaml names
invalidation=website-release # and the object's name

step() { printf '\n== %s\n' "$*"; }
dump() {
	step "FAILED: state of the cluster"
	kubectl get cloudfrontinvalidations -A -o yaml || true
	kubectl -n "$ns" get pods -o wide || true
	kubectl -n "$ns" describe pods || true
	kubectl -n "$ns" logs deployment/cloudfront-invalidation-operator --tail=200 || true
	kubectl -n "$ns" logs deployment/cloudfront-simulator --tail=200 || true
	kubectl get events -A --sort-by=.lastTimestamp | tail -50 || true
}
trap dump ERR
if [[ "${KIND_DELETE:-0}" == 1 ]]; then
	trap 'kind delete cluster --name "$cluster"' EXIT
fi

step "build $image and $sim_image"
docker build --tag "$image" .
docker build --target cloudfront-sim --tag "$sim_image" .

step "kind cluster $cluster"
kind get clusters | grep -qx "$cluster" || kind create cluster --name "$cluster" --wait 120s
kubectl config use-context "kind-$cluster"
kind load docker-image "$image" "$sim_image" --name "$cluster"

step "CloudFront simulator (its own image)"
kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$ns" apply -f - <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: cloudfront-simulator
spec:
  selector:
    matchLabels: {app: cloudfront-simulator}
  template:
    metadata:
      labels: {app: cloudfront-simulator}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: simulator
          image: $sim_image
          imagePullPolicy: Never
          args: [--listen=0.0.0.0:8480, --distribution=$distribution, --completion-after=10s]
          ports: [{name: http, containerPort: 8480}]
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Service
metadata:
  name: cloudfront-simulator
spec:
  selector: {app: cloudfront-simulator}
  ports: [{name: http, port: 8480, targetPort: http}]
YAML
kubectl -n "$ns" rollout status deployment/cloudfront-simulator --timeout=120s
# The AWS SDK signs every request, even to the simulator: give it static credentials the way a
# cluster outside EKS would (docs/aws-credentials.md).
kubectl -n "$ns" create secret generic aws-credentials \
	--from-literal=AWS_ACCESS_KEY_ID=AKIAE2EEXAMPLE --from-literal=AWS_SECRET_ACCESS_KEY=e2e-secret \
	--dry-run=client -o yaml | kubectl apply -f -

step "install the chart"
helm upgrade --install cloudfront-invalidation-operator charts/cloudfront-invalidation-operator \
	--namespace "$ns" --wait --timeout 3m \
	--set image.repository="${image%:*}" --set image.tag="${image##*:}" --set image.pullPolicy=Never \
	--set cloudfront.endpointUrl="http://cloudfront-simulator.$ns.svc:8480" \
	--set aws.credentialsSecret=aws-credentials \
	--set logFormat=text

step "invalidate: examples/basic.yaml"
kubectl delete cloudfrontinvalidation "$invalidation" --ignore-not-found --wait
kubectl apply -f examples/basic.yaml
kubectl wait --for=condition=Completed --timeout=5m "cloudfrontinvalidation/$invalidation"
kubectl get cloudfrontinvalidation "$invalidation"
step "e2e passed"
