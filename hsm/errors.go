package hsm

import (
	"errors"

	"github.com/miekg/pkcs11"
)

// failure says what a PKCS #11 error means for the session and the module.
type failure int

const (
	// failNone: no error, or an error about the request itself (bad
	// mechanism, data length, key not found...). The session is fine.
	failNone failure = iota
	// failSession: this session (or the object handle used on it) is no
	// longer good. Close it and try once more on another session.
	failSession
	// failModule: the module or token is in trouble. Finalize and
	// re-initialise the module, find the token and log in again.
	failModule
	// failLogin: the token refused the PIN. Retrying would lock the token.
	failLogin
)

// classify maps an error from the module to a failure class.
func classify(err error) failure {
	if err == nil {
		return failNone
	}
	var e pkcs11.Error
	if !errors.As(err, &e) {
		if errors.Is(err, errTokenNotFound) {
			return failModule
		}
		return failNone
	}
	switch uint(e) {
	case pkcs11.CKR_SESSION_HANDLE_INVALID,
		pkcs11.CKR_SESSION_CLOSED,
		pkcs11.CKR_OBJECT_HANDLE_INVALID,
		pkcs11.CKR_KEY_HANDLE_INVALID,
		pkcs11.CKR_USER_NOT_LOGGED_IN,
		pkcs11.CKR_OPERATION_ACTIVE,
		pkcs11.CKR_OPERATION_NOT_INITIALIZED,
		pkcs11.CKR_FUNCTION_FAILED,
		pkcs11.CKR_SESSION_COUNT:
		return failSession
	case pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
		pkcs11.CKR_DEVICE_ERROR,
		pkcs11.CKR_DEVICE_REMOVED,
		pkcs11.CKR_DEVICE_MEMORY,
		pkcs11.CKR_TOKEN_NOT_PRESENT,
		pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
		pkcs11.CKR_SLOT_ID_INVALID,
		pkcs11.CKR_GENERAL_ERROR:
		return failModule
	case pkcs11.CKR_PIN_INCORRECT,
		pkcs11.CKR_PIN_INVALID,
		pkcs11.CKR_PIN_LEN_RANGE,
		pkcs11.CKR_PIN_EXPIRED,
		pkcs11.CKR_PIN_LOCKED,
		pkcs11.CKR_USER_PIN_NOT_INITIALIZED:
		return failLogin
	default:
		return failNone
	}
}

// errTokenNotFound: no slot holds a token with the configured label.
var errTokenNotFound = errors.New("token not present")

// isCode reports whether err is the PKCS #11 return value code.
func isCode(err error, code uint) bool {
	var e pkcs11.Error
	return errors.As(err, &e) && uint(e) == code
}
