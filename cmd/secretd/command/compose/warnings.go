package compose

import (
	"strings"

	"github.com/sirupsen/logrus"
)

// obsoleteVersion is how compose-go's warning about a top-level version:
// attribute reads.
const obsoleteVersion = "the attribute `version` is obsolete"

// withoutVersionAdvice is a logrus formatter that drops compose-go's advice
// to remove a compose file's top-level version: `docker stack deploy`
// requires that attribute, and a stack file is what secretd compose runs as
// it is. Every other warning is printed as before.
type withoutVersionAdvice struct{ logrus.Formatter }

// Format prints nothing for the version advice.
func (f withoutVersionAdvice) Format(e *logrus.Entry) ([]byte, error) {
	if strings.Contains(e.Message, obsoleteVersion) {
		return nil, nil
	}
	return f.Formatter.Format(e)
}

// quietVersionAdvice installs withoutVersionAdvice on logrus's standard
// logger, which compose-go logs to, once.
func quietVersionAdvice() {
	l := logrus.StandardLogger()
	if _, ok := l.Formatter.(withoutVersionAdvice); !ok {
		l.SetFormatter(withoutVersionAdvice{l.Formatter})
	}
}
