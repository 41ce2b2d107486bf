//go:build race

package main

// raceEnabled: the tests run under -race, so the e2e binary is built with
// -race too; it then reuses the packages the test build already compiled.
const raceEnabled = true
