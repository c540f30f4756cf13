#!/usr/bin/env python3
# gen.py - writes the test messages of test_eval_mime.c (*.eml here); their expected results
# come from SpamAssassin itself (record.sh), never from this script.
import base64, struct, zlib

H = ("From: Sender <sender@example.com>\nTo: rcpt@example.org\n"
     "Date: Tue, 01 Dec 2026 10:00:00 +0000\nMessage-Id: <%s@example.com>\n")

def msg(name, headers, body):
    with open(name + ".eml", "wb") as f:
        f.write((H % name).encode() + headers + b"\n" + body)

def b64(data, width=76):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + width] for i in range(0, len(s), width)).encode() + b"\n"

def gif(w, h):
    return b"GIF89a" + struct.pack("<HHBBB", w, h, 0xf7, 0, 0) + b"\x00" * 40 + b";"

def png(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\x00" * 30) + chunk(b"IEND", b"")

def jpeg(w, h, app=200):
    app0 = b"\xff\xe0" + struct.pack(">H", app + 2) + b"J" * app
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, h, w, 3) + b"\x01\x22\x00\x02\x11\x01\x03\x11\x01"
    return b"\xff\xd8" + app0 + sof + b"\xff\xda\x00\x02" + b"\x00" * 20 + b"\xff\xd9"

MP = b"MIME-Version: 1.0\nContent-Type: multipart/%s; boundary=\"BB\"\n"
TXT = b"Content-Type: text/plain; charset=us-ascii\n\n"
HTM = b"Content-Type: text/html; charset=us-ascii\n\n"
words = b"the quick brown fox jumps over the lazy dog while we talk about lunch plans\n"

msg("epilogue", b"Subject: epilogue\n" + MP % b"mixed",
    b"preamble\n--BB\n" + TXT + words + b"--BB--\nthis is an epilogue with text\n")
msg("epilogue_dots", b"Subject: dots only\n" + MP % b"mixed",
    b"--BB\n" + TXT + words + b"--BB--\n.\n  \n\n")
msg("nohdrs", b"Subject: part without headers\n" + MP % b"mixed",
    b"--BB\n\n" + words + b"--BB\n" + TXT + words + b"--BB--\n")
msg("nosep", b"Subject: header then body without blank\n" + MP % b"mixed",
    b"--BB\nContent-Type: text/plain\nthis line is no header\n" + words + b"--BB--\n")
msg("delim_delim", b"Subject: two delimiters\n" + MP % b"mixed",
    b"--BB\n--BB\n" + TXT + words + b"--BB--\n")
msg("ascii8", b"Subject: eight bit in us-ascii\nContent-Type: text/plain; charset=us-ascii\n",
    b"caf\xe9 cr\xe8me br\xfbl\xe9e is on the menu today\n" + words)
msg("ascii_nocs", b"Subject: eight bit, no content-type\n", b"na\xefve text\n" + words)
msg("ascii_latin", b"Subject: eight bit in latin1\nContent-Type: text/plain; charset=iso-8859-1\n",
    b"caf\xe9 text\n" + words)
msg("unicode", b"Subject: entities\nContent-Type: text/plain\n",
    b"&#x0041;&#x0042;&#x0043;&#x0044;&#x0045; &#x00E9;&#x00e9; text\nplain words here\n")
msg("unicode_low", b"Subject: few entities\nContent-Type: text/plain\nContent-Transfer-Encoding: 8bit\n",
    b"&#x0041; " + words * 3)
alt_text = b"hello there friend this is the plain part of the message\n"
alt_html = b"<html><body><p>Completely different wording appears inside markup only</p></body></html>\n"
msg("alt_diff", b"Subject: alternative differs\n" + MP % b"alternative",
    b"--BB\n" + TXT + alt_text + b"--BB\n" + HTM + alt_html + b"--BB--\n")
msg("alt_same", b"Subject: alternative same\n" + MP % b"alternative",
    b"--BB\n" + TXT + alt_text + b"--BB\n" + HTM + b"<html><body>" + alt_text + b"</body></html>\n--BB--\n")
msg("alt_img", b"Subject: alternative image only\n" + MP % b"alternative",
    b"--BB\n" + TXT + alt_text * 3 + b"--BB\n" + HTM +
    b"<html><body><a href=\"http://example.com/\"><img src=\"http://example.com/a.gif\"></a></body></html>\n--BB--\n")
msg("alt_count", b"Subject: alternative count\n" + MP % b"alternative",
    b"--BB\n" + TXT + b"one two three four five six seven eight nine ten eleven twelve\n" +
    b"--BB\n" + HTM + b"<p>one two</p>\n--BB--\n")
msg("html_mostly", b"Subject: mostly html\n" + MP % b"alternative",
    b"--BB\n" + TXT + b"\n--BB\n" + HTM + b"<html><body>" + words * 20 + b"</body></html>\n--BB--\n")
msg("html_mostly_mixed", b"Subject: text before the alternative\n" + MP % b"mixed",
    b"--BB\n" + TXT + words + b"--BB\nContent-Type: multipart/alternative; boundary=\"CC\"\n\n" +
    b"--CC\n" + HTM + b"<p>" + words * 4 + b"</p>\n--CC--\n--BB--\n")
qp = (b"Content-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\n")
msg("qp_long", b"Subject: qp long line\n" + b"MIME-Version: 1.0\n" + qp,
    b"this line is long " + b"x" * 70 + b"\nshort =3D=3D line=20=20\nSPAM: " + b"y" * 90 + b"\n")
msg("qp_clean", b"Subject: qp without escapes\nMIME-Version: 1.0\n" + qp, words * 2)
msg("qp_trailing", b"Subject: qp only trailing\nMIME-Version: 1.0\n" + qp,
    b"some text=20\nmore text=09=20 \n")
msg("b64_text", b"Subject: base64 text\nMIME-Version: 1.0\nContent-Type: text/plain\n"
    b"Content-Transfer-Encoding: base64\n", b64(words * 4, 79))
msg("b64_78", b"Subject: base64 78\nMIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: base64\nContent-Disposition: inline\n", b64(words * 4, 77))
msg("b64_ics", b"Subject: base64 ics\n" + MP % b"mixed",
    b"--BB\n" + TXT + words + b"--BB\nContent-Type: application/ics\nContent-Transfer-Encoding: base64\n\n" +
    b64(words * 4, 100) + b"--BB--\n")
msg("attach_iso", b"Subject: attachment\n" + MP % b"mixed",
    b"--BB\nContent-Type: text/plain; charset=\"iso-1234-5\"\n\n" + words +
    b"--BB\nContent-Type: application/octet-stream; name=x.bin\nContent-Disposition: attachment; filename=x.bin\n"
    b"Content-Transfer-Encoding: base64\n\n" + b64(b"\x00\x01" * 50) + b"--BB--\n")
msg("iso_ok", b"Subject: good iso\nContent-Type: text/plain; charset=iso-8859-15\n", words)
msg("upper", b"Subject: shouting\nContent-Type: text/plain\n",
    b"THIS IS A VERY LOUD MESSAGE WITH MANY WORDS IN CAPITALS AND a few small ones\n\n" * 5)
msg("upper_mid", b"Subject: some caps\nContent-Type: text/plain\n",
    b"This Is A Title Case Message That Goes On For A While With Many Words In It\n\n" * 5)
msg("upper_koi8", b"Subject: koi8\nContent-Type: text/plain; charset=koi8-r\n",
    b"THIS IS A VERY LOUD MESSAGE WITH MANY WORDS IN CAPITALS AND a few small ones\n\n" * 5)
msg("upper_short", b"Subject: short caps\nContent-Type: text/plain\n", b"BUY NOW CHEAP PILLS\n")
msg("blank", b"Subject: blank lines\nContent-Type: text/plain\n", b"a\n\n\n\n\n\n\nb\n\n\n\n\n\n\n\n\n\n\n\nc\n")
msg("short", b"Subject: short\n", b"hi\n")
msg("nobody", b"Subject: no body at all\n", b"")
img_html = b"<html><body><img src=\"cid:a\"></body></html>\n"
msg("images", b"Subject: images\n" + MP % b"related",
    b"--BB\n" + HTM + img_html +
    b"--BB\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n" + b64(gif(600, 400)) +
    b"--BB\nContent-Type: image/png; name=\"a.png\"\nContent-Transfer-Encoding: base64\n\n" + b64(png(500, 400)) +
    b"--BB\nContent-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n" + b64(jpeg(300, 200, 3000)) +
    b"--BB--\n")
msg("one_gif", b"Subject: one gif\n" + MP % b"mixed",
    b"--BB\n" + TXT + b"see\n--BB\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n" +
    b64(gif(400, 300)) + b"--BB--\n")
msg("two_gif_alt", b"Subject: gifs in alternative\n" + MP % b"alternative",
    b"--BB\n" + TXT + words + b"--BB\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n" +
    b64(gif(10, 10)) + b"--BB\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n" +
    b64(gif(20, 20)) + b"--BB--\n")
msg("rtf_alt", b"Subject: rtf in alternative\n" + MP % b"alternative",
    b"--BB\n" + TXT + words + b"--BB\nContent-Type: application/rtf\n\n{\\rtf1 x}\n--BB--\n")
# hostile: broken base64, truncated images, absurd lengths, empty parts, deep nesting
msg("bad_images", b"Subject: broken images\n" + MP % b"mixed",
    b"--BB\n" + TXT + b"x\n--BB\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n!!!!####\n" +
    b"--BB\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n" + b64(png(100, 100)[:20]) +
    b"--BB\nContent-Type: image/jpeg\nContent-Transfer-Encoding: base64\n\n" +
    b64(b"\xff\xd8\xff\xe1\xff\xff" + b"A" * 100) +
    b"--BB\nContent-Type: image/jpg\nContent-Transfer-Encoding: 7bit\n\nGIF89a\n" +
    b"--BB\nContent-Type: image/png\nContent-Transfer-Encoding: base64\n\n" +
    b64(b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x05IDAT" + b"\x00" * 5 + b"\xff\xff\xff\xffIHDR" + b"\x00" * 20) +
    b"--BB\n\n--BB\n--BB--\n")
msg("empty_parts", b"Subject: empty parts\n" + MP % b"alternative",
    b"--BB\n" + TXT + b"--BB\n" + HTM + b"--BB--\n")
msg("no_close", b"Subject: never closed\n" + MP % b"mixed",
    b"--BB\n" + TXT + words + b"--BB\n" + HTM + b"<p>x</p>\n")
nest = b""
for i in range(30):
    nest += b"--B%d\nContent-Type: multipart/mixed; boundary=\"B%d\"\n\n" % (i, i + 1)
msg("deep", b"Subject: deep\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B0\"\n",
    nest + b"--B30\n" + TXT + words + b"--B30--\n")
msg("malformed_html", b"Subject: malformed html\n" + MP % b"alternative",
    b"--BB\n" + TXT + alt_text + b"--BB\n" + HTM + b"<html><body <img <<<>>> <p\n--BB--\n")

msg("gif_short", b"Subject: short gif\n" + MP % b"mixed",
    b"--BB\n" + TXT + b"x\n--BB\nContent-Type: image/gif\nContent-Transfer-Encoding: base64\n\n" +
    base64.b64encode(b"GIF89a\x90\x01\x2c\x01").rstrip(b"=") + b"\n--BB--\n")
msg("calendar", b"Subject: invitation\n" + MP % b"alternative",
    b"--BB\n" + HTM + alt_html + b"--BB\nContent-Type: text/calendar; method=REQUEST\n\n"
    b"BEGIN:VCALENDAR\nSUMMARY:lunch\nEND:VCALENDAR\n--BB--\n")
msg("calendar3", b"Subject: invitation and text\n" + MP % b"alternative",
    b"--BB\n" + TXT + b"lunch\n--BB\n" + HTM + alt_html + b"--BB\nContent-Type: text/calendar\n\n"
    b"BEGIN:VCALENDAR\nEND:VCALENDAR\n--BB--\n")
msg("alt_pdf", b"Subject: pdf in alternative\n" + MP % b"alternative",
    b"--BB\n" + TXT + words + b"--BB\nContent-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n" +
    b64(b"%PDF-1.4 junk") + b"--BB--\n")
msg("alt_nested", b"Subject: related inside alternative\n" + MP % b"mixed",
    b"--BB\nContent-Type: multipart/alternative; boundary=\"CC\"\n\n--CC\n" + TXT + alt_text +
    b"--CC\nContent-Type: multipart/related; boundary=\"DD\"\n\n--DD\n" + HTM +
    b"<p>" + alt_text + b" and more words in html only here</p>\n--DD\nContent-Type: image/png\n"
    b"Content-Transfer-Encoding: base64\n\n" + b64(png(700, 500)) + b"--DD--\n--CC--\n--BB--\n")
msg("qp_html_long", b"Subject: qp html\n" + MP % b"alternative",
    b"--BB\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n" +
    b"caf=C3=A9 =3D text=\n more\n--BB\nContent-Type: text/html; charset=utf-8\n"
    b"Content-Transfer-Encoding: quoted-printable\n\n<p style=3D\"color:red\">" + b"w" * 90 + b"</p>\n--BB--\n")
msg("crlf_mix", b"Subject: cr in text\nContent-Type: text/plain\n", b"line one\rstill one\nline two\n")
many = b"".join(b"--BB\nContent-Type: text/plain\n\npart %d\n" % i for i in range(1005))
msg("many_parts", b"Subject: too many parts\n" + MP % b"mixed", many + b"--BB--\nepilogue text\n")
