//go:build tools

// Package oracle pins Argo's own programs, built by tests/oracle/build for
// the compatibility tests. Nothing here is part of the product.
package oracle

import (
	_ "github.com/argoproj/argo-workflows/v3/cmd/argoexec"
	_ "github.com/argoproj/argo-workflows/v3/cmd/workflow-controller"
)
