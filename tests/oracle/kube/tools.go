//go:build tools

// Package oracle pins a real kube-apiserver, built by tests/oracle/build for
// the compatibility tests. Nothing here is part of the product.
package oracle

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
