// Wrapper main for etcd: etcd's own main package lives in the root module
// go.etcd.io/etcd/v3, whose go.mod points at its siblings with relative
// replaces and so cannot be built from the module proxy. server/v3 exposes
// the same entry point.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
