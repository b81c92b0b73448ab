package store

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/mattn/go-sqlite3"

	"github.com/jpkica/jpkica/ca"
)

// classify returns err wrapped with the ca sentinel that describes it, or err
// itself when none fits or it already carries one.
func (s *Store) classify(err error) error {
	if err == nil {
		return nil
	}
	for _, known := range []error{ca.ErrNotFound, ca.ErrConflict, ca.ErrInvalid, ca.ErrUnavailable} {
		if errors.Is(err, known) {
			return err
		}
	}
	if s.closed.Load() {
		return fmt.Errorf("%w: store closed: %w", ca.ErrUnavailable, err)
	}
	switch sentinel := sentinelFor(err); sentinel {
	case nil:
		return err
	case ca.ErrNotFound, ca.ErrConflict:
		return &stateError{sentinel: sentinel, cause: err}
	default:
		return fmt.Errorf("%w: %w", sentinel, err)
	}
}

// stateError is a driver error that reports a state of the data (no such
// row, a uniqueness or foreign key constraint), which the API answers with
// a 404 or 409 and the commands print. Its text is the sentinel's alone, so
// that no SQL (statement, constraint or table names, the driver's words)
// reaches a client or a terminal; the caller's step names say where it
// happened. errors.Is and errors.As still find the sentinel and the
// driver's error.
type stateError struct {
	sentinel, cause error
}

func (e *stateError) Error() string   { return e.sentinel.Error() }
func (e *stateError) Unwrap() []error { return []error{e.sentinel, e.cause} }

func sentinelFor(err error) error {
	if errors.Is(err, sql.ErrNoRows) {
		return ca.ErrNotFound
	}
	var se sqlite3.Error
	if errors.As(err, &se) {
		switch se.ExtendedCode {
		case sqlite3.ErrConstraintUnique, sqlite3.ErrConstraintPrimaryKey:
			return ca.ErrConflict
		case sqlite3.ErrConstraintForeignKey:
			return ca.ErrNotFound
		}
		switch se.Code {
		case sqlite3.ErrBusy, sqlite3.ErrLocked, sqlite3.ErrCantOpen, sqlite3.ErrIoErr,
			sqlite3.ErrFull, sqlite3.ErrNotADB, sqlite3.ErrCorrupt, sqlite3.ErrReadonly:
			return ca.ErrUnavailable
		}
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505": // unique_violation
			return ca.ErrConflict
		case pe.Code == "23503": // foreign_key_violation
			return ca.ErrNotFound
		case retryable(pe.Code):
			return ca.ErrUnavailable
		case pe.Code == "25006": // read_only_sql_transaction: a standby, or a primary made read-only
			return ca.ErrUnavailable
		case pe.Code == "25006": // read_only_sql_transaction: a standby, or a primary being demoted
			return ca.ErrUnavailable
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                           // insufficient resources
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // shutdown, cannot connect now
			pe.Code == "3D000": // database does not exist
			return ca.ErrUnavailable
		}
		return nil
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	switch {
	case errors.As(err, &ce), errors.As(err, &ne),
		errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		pgconn.SafeToRetry(err):
		return ca.ErrUnavailable
	}
	return nil
}

// retryable reports whether a transaction that failed with the SQLSTATE
// code lost a race with another and may succeed if run again:
// serialization_failure or deadlock_detected.
func retryable(code string) bool { return code == "40001" || code == "40P01" }

// lostRace reports whether err is a PostgreSQL transaction that lost a
// serialization or deadlock race (write runs it again).
func lostRace(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && retryable(pe.Code)
}
