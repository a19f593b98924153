// Package arch holds the layout of the module as a test: which package may
// import which (docs/design.md §3). `make lint` runs it, so a wrong import
// fails CI. It has no code of its own to import.
package arch
