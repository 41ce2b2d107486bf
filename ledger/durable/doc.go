// Package durable makes a newly created or linked file's name survive a
// power cut, the one step of durability that differs per operating system
// (docs/ledger.md, "Durability per operating system"). The ledger and the
// agent's generated secrets share it.
package durable
