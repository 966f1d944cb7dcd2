package sourced

import (
	"errors"
	"fmt"
	"slices"

	"github.com/secretd/secretd/internal/source"
)

// didYouMean adds the built-in driver a missing driver's name is a typo of
// ("shel", "shelll") to the error that says it is missing.
func (s *Service) didYouMean(err error, driver string) error {
	if !errors.Is(err, source.ErrUnknownDriver) {
		return err
	}
	var names []string
	for name := range s.Drivers.Builtin {
		if name != driver && editDistance(name, driver) <= 2 {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return err
	}
	slices.Sort(names)
	return fmt.Errorf("%w; did you mean --driver %s?", err, names[0])
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
