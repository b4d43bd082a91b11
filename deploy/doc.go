// Package deploy holds the tests of the Helm chart: rendered with Helm's
// own engine and every object decoded strictly into the Kubernetes API
// types. It is a module of its own so that Helm and the k8s.io modules stay
// out of the service's go.mod.
package deploy
