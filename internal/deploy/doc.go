// Package deploy holds no code: its tests check the deployment files at the
// repository root (docker-compose.yml, Dockerfile, .env), which cannot be run
// where there is no Docker engine, by loading them the way Compose does, and
// the Kubernetes manifests of deploy/kubernetes, which cannot be run where
// there is no cluster, by rendering them the way kubectl apply -k does.
package deploy
