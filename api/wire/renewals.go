package wire

import (
	"encoding/csv"
	"io"
)

// RenewalCSVHeader is the first line of the mail house's CSV.
var RenewalCSVHeader = []string{"serial", "type", "resident_id", "card_id", "municipality", "not_after", "window_opens"}

// WriteRenewalCSV writes the notices as CSV with a header line.
func WriteRenewalCSV(w io.Writer, ns RenewalNotices) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(RenewalCSVHeader); err != nil {
		return err
	}
	for _, n := range ns.Notices {
		if err := cw.Write([]string{n.Serial, n.Type, n.ResidentID, n.CardID, n.Municipality, n.NotAfter, n.WindowOpens}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
