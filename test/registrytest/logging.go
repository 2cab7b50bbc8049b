package registrytest

import (
	"io"
	"os"
	"sync"

	"github.com/sirupsen/logrus"
)

// LogEnv names the environment variable that, when set to a logrus level
// (debug, info, warn, error), sends the registry's logs to stderr at that
// level. Unset, the registry's logs are discarded.
const LogEnv = "REGISTRYTEST_LOG"

var quietOnce sync.Once

// quietLogging configures the process-wide logrus standard logger, which is
// what Distribution's handlers log through when they are used without
// registry.NewRegistry (the "response completed" info line per request, the
// "No HTTP secret provided" warning, client-disconnect errors, ...).
func quietLogging() {
	quietOnce.Do(func() {
		lvl, err := logrus.ParseLevel(os.Getenv(LogEnv))
		if os.Getenv(LogEnv) == "" || err != nil {
			logrus.SetLevel(logrus.ErrorLevel)
			logrus.SetOutput(io.Discard)
			return
		}
		logrus.SetLevel(lvl)
		logrus.SetOutput(os.Stderr)
	})
}
