// Wrapper main for daprd, built with -tags stablecomponents so only Dapr's
// stable components are linked in (the same set the release binary carries).
package main

import (
	"github.com/dapr/dapr/cmd/daprd/app"
)

func main() {
	app.Run()
}
