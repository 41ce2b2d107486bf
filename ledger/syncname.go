package ledger

import (
	"fmt"

	"posagent/ledger/durable"
)

// syncName makes a file the ledger created or linked keep its name through
// a power cut, the way its operating system needs.
func syncName(path string) error {
	if err := durable.Name(path); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
