//go:build tools

// Package oracle pins etcd (the kube-apiserver's store), built by
// tests/oracle/build for the compatibility tests. Nothing here is part of the
// product.
package oracle

import (
	_ "go.etcd.io/etcd/server/v3"
)
