package loyalty

import (
	"errors"
	"time"
)

// Quote prices basket b for member m (nil: a non-member) at instant at,
// converted to the program's time zone.
func (p *Program) Quote(b Basket, m *Member, at time.Time) (Quote, error) {
	return Quote{}, errors.New("loyalty: quote not implemented yet")
}
