/*
 * filter_eval_htmlx.c - the rest of HTMLEval (font, image ratio, obfuscation, tag ratios, title) and the URI tests (see filter_eval_htmlx.h).
 *
 * Each function below follows the Mail::SpamAssassin::HTML method of the same role (html_tag,
 * text_style, close_tag, close_table_tag, html_tests, html_text, html_font_invisible,
 * name_to_rgb, parse_css_background), including their odd cases: a bgcolor attribute does not
 * change the text's background (only style does); big and small do not raise max_size; a
 * colour HTML.pm cannot read is "invalid", and text whose colour and background are both
 * invalid has low contrast.
 * XXX: character references in attribute values and text are not decoded (HTML::Parser
 * decodes them), except that "&nbsp;" counts as white space as in HTML.pm.
 */
#include "filter_types.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* what $pms->get('Subject') has beyond the decoded field: its line end */
#define FILTER_HTMLX_SUBJ_EXTRA 1

/* the tags of the text style stack (HTML.pm's elements_text_style; th is td) */
enum { FILTER_HTMLX_T_DEFAULT, FILTER_HTMLX_T_BODY, FILTER_HTMLX_T_FONT, FILTER_HTMLX_T_TABLE,
       FILTER_HTMLX_T_TR, FILTER_HTMLX_T_TD, FILTER_HTMLX_T_BIG, FILTER_HTMLX_T_SMALL,
       FILTER_HTMLX_T_BASEFONT, FILTER_HTMLX_T_SPAN, FILTER_HTMLX_T_P, FILTER_HTMLX_T_DIV,
       FILTER_HTMLX_T_A, FILTER_HTMLX_T_NONE };

static const char *const filter_htmlx_style_tags[] = {
	"", "body", "font", "table", "tr", "td", "big", "small", "basefont", "span", "p", "div", "a",
};

/* per-part flags (html_test's names) */
#define FILTER_HTMLX_F_LOW_CONTRAST 0x01u
#define FILTER_HTMLX_F_INVALID      0x02u
#define FILTER_HTMLX_F_FACE_BAD     0x04u
#define FILTER_HTMLX_F_MAILTO       0x08u
#define FILTER_HTMLX_F_EMBEDS       0x10u
#define FILTER_HTMLX_F_TITLE120     0x20u

/* which values a part defines */
#define FILTER_HTMLX_D_TAGS         0x01u  /* closed_extra_ratio */
#define FILTER_HTMLX_D_BAD_TAG      0x02u
#define FILTER_HTMLX_D_NON_ELEMENT  0x04u
#define FILTER_HTMLX_D_OBFUSCATION  0x08u

/* html_range's values */
enum { FILTER_HTMLX_V_MAX_SIZE, FILTER_HTMLX_V_CLOSED_EXTRA, FILTER_HTMLX_V_BAD_TAG,
       FILTER_HTMLX_V_NON_ELEMENT, FILTER_HTMLX_V_OBFUSCATION };

/* html_eval's comparisons */
enum { FILTER_HTMLX_CMP_LT = 1, FILTER_HTMLX_CMP_LE, FILTER_HTMLX_CMP_GT, FILTER_HTMLX_CMP_GE,
       FILTER_HTMLX_CMP_EQ, FILTER_HTMLX_CMP_NE };

/* attribute tokenizer states */
enum { FILTER_HTMLX_AS_SEP, FILTER_HTMLX_AS_NAME, FILTER_HTMLX_AS_AFTER_NAME, FILTER_HTMLX_AS_EQ,
       FILTER_HTMLX_AS_VALQ, FILTER_HTMLX_AS_VALU };

static const char *const filter_htmlx_attrs[FILTER_HTMLX_A_N] = {
	"color", "text", "size", "face", "style", "width", "height", "action",
};

/* HTML.pm's %elements (HTML 4 and a few more) */
static const char *const filter_htmlx_elements[] = {
	"a", "abbr", "acronym", "address", "area", "b", "base", "bdo", "big", "blockquote", "body",
	"br", "button", "caption", "cite", "code", "col", "colgroup", "dd", "del", "dfn", "div",
	"dl", "dt", "em", "fieldset", "form", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr",
	"html", "i", "img", "input", "ins", "kbd", "label", "legend", "li", "link", "map", "meta",
	"noscript", "object", "ol", "optgroup", "option", "p", "param", "pre", "q", "samp",
	"script", "select", "small", "span", "strong", "style", "sub", "sup", "table", "tbody",
	"td", "textarea", "tfoot", "th", "thead", "title", "tr", "tt", "ul", "var",
	"applet", "basefont", "center", "dir", "font", "frame", "frameset", "iframe", "isindex",
	"menu", "noframes", "s", "strike", "u", "nobr", "x-sigsep", "x-tab", NULL,
};
/* %tricks: not elements, but tags browsers act on */
static const char *const filter_htmlx_tricks[] = {
	"bgsound", "embed", "listing", "plaintext", "xmp", NULL,
};
/* %elements_whitespace: they put white space into the rendered text */
static const char *const filter_htmlx_ws_tags[] = {
	"br", "div", "li", "th", "td", "dt", "dd", "p", "hr", "blockquote", "pre", "embed",
	"listing", "plaintext", "xmp", "title", "h1", "h2", "h3", "h4", "h5", "h6", NULL,
};

struct filter_htmlx_named { const char *name; uint32_t rgb; };

static const struct filter_htmlx_named filter_htmlx_colors[] = {
	{ "aliceblue", 0xf0f8ff },
	{ "antiquewhite", 0xfaebd7 },
	{ "aqua", 0x00ffff },
	{ "aquamarine", 0x7fffd4 },
	{ "azure", 0xf0ffff },
	{ "beige", 0xf5f5dc },
	{ "bisque", 0xffe4c4 },
	{ "black", 0x000000 },
	{ "blanchedalmond", 0xffebcd },
	{ "blue", 0x0000ff },
	{ "blueviolet", 0x8a2be2 },
	{ "brown", 0xa52a2a },
	{ "burlywood", 0xdeb887 },
	{ "cadetblue", 0x5f9ea0 },
	{ "chartreuse", 0x7fff00 },
	{ "chocolate", 0xd2691e },
	{ "coral", 0xff7f50 },
	{ "cornflowerblue", 0x6495ed },
	{ "cornsilk", 0xfff8dc },
	{ "crimson", 0xdc143c },
	{ "cyan", 0x00ffff },
	{ "darkblue", 0x00008b },
	{ "darkcyan", 0x008b8b },
	{ "darkgoldenrod", 0xb8860b },
	{ "darkgray", 0xa9a9a9 },
	{ "darkgreen", 0x006400 },
	{ "darkgrey", 0xa9a9a9 },
	{ "darkkhaki", 0xbdb76b },
	{ "darkmagenta", 0x8b008b },
	{ "darkolivegreen", 0x556b2f },
	{ "darkorange", 0xff8c00 },
	{ "darkorchid", 0x9932cc },
	{ "darkred", 0x8b0000 },
	{ "darksalmon", 0xe9967a },
	{ "darkseagreen", 0x8fbc8f },
	{ "darkslateblue", 0x483d8b },
	{ "darkslategray", 0x2f4f4f },
	{ "darkslategrey", 0x2f4f4f },
	{ "darkturquoise", 0x00ced1 },
	{ "darkviolet", 0x9400d3 },
	{ "deeppink", 0xff1493 },
	{ "deepskyblue", 0x00bfff },
	{ "dimgray", 0x696969 },
	{ "dimgrey", 0x696969 },
	{ "dodgerblue", 0x1e90ff },
	{ "firebrick", 0xb22222 },
	{ "floralwhite", 0xfffaf0 },
	{ "forestgreen", 0x228b22 },
	{ "fuchsia", 0xff00ff },
	{ "gainsboro", 0xdcdcdc },
	{ "ghostwhite", 0xf8f8ff },
	{ "gold", 0xffd700 },
	{ "goldenrod", 0xdaa520 },
	{ "gray", 0x808080 },
	{ "green", 0x008000 },
	{ "greenyellow", 0xadff2f },
	{ "grey", 0x808080 },
	{ "honeydew", 0xf0fff0 },
	{ "hotpink", 0xff69b4 },
	{ "indianred", 0xcd5c5c },
	{ "indigo", 0x4b0082 },
	{ "ivory", 0xfffff0 },
	{ "khaki", 0xf0e68c },
	{ "lavender", 0xe6e6fa },
	{ "lavenderblush", 0xfff0f5 },
	{ "lawngreen", 0x7cfc00 },
	{ "lemonchiffon", 0xfffacd },
	{ "lightblue", 0xadd8e6 },
	{ "lightcoral", 0xf08080 },
	{ "lightcyan", 0xe0ffff },
	{ "lightgoldenrodyellow", 0xfafad2 },
	{ "lightgray", 0xd3d3d3 },
	{ "lightgreen", 0x90ee90 },
	{ "lightgrey", 0xd3d3d3 },
	{ "lightpink", 0xffb6c1 },
	{ "lightsalmon", 0xffa07a },
	{ "lightseagreen", 0x20b2aa },
	{ "lightskyblue", 0x87cefa },
	{ "lightslategray", 0x778899 },
	{ "lightslategrey", 0x778899 },
	{ "lightsteelblue", 0xb0c4de },
	{ "lightyellow", 0xffffe0 },
	{ "lime", 0x00ff00 },
	{ "limegreen", 0x32cd32 },
	{ "linen", 0xfaf0e6 },
	{ "magenta", 0xff00ff },
	{ "maroon", 0x800000 },
	{ "mediumaquamarine", 0x66cdaa },
	{ "mediumblue", 0x0000cd },
	{ "mediumorchid", 0xba55d3 },
	{ "mediumpurple", 0x9370db },
	{ "mediumseagreen", 0x3cb371 },
	{ "mediumslateblue", 0x7b68ee },
	{ "mediumspringgreen", 0x00fa9a },
	{ "mediumturquoise", 0x48d1cc },
	{ "mediumvioletred", 0xc71585 },
	{ "midnightblue", 0x191970 },
	{ "mintcream", 0xf5fffa },
	{ "mistyrose", 0xffe4e1 },
	{ "moccasin", 0xffe4b5 },
	{ "navajowhite", 0xffdead },
	{ "navy", 0x000080 },
	{ "oldlace", 0xfdf5e6 },
	{ "olive", 0x808000 },
	{ "olivedrab", 0x6b8e23 },
	{ "orange", 0xffa500 },
	{ "orangered", 0xff4500 },
	{ "orchid", 0xda70d6 },
	{ "palegoldenrod", 0xeee8aa },
	{ "palegreen", 0x98fb98 },
	{ "paleturquoise", 0xafeeee },
	{ "palevioletred", 0xdb7093 },
	{ "papayawhip", 0xffefd5 },
	{ "peachpuff", 0xffdab9 },
	{ "peru", 0xcd853f },
	{ "pink", 0xffc0cb },
	{ "plum", 0xdda0dd },
	{ "powderblue", 0xb0e0e6 },
	{ "purple", 0x800080 },
	{ "red", 0xff0000 },
	{ "rosybrown", 0xbc8f8f },
	{ "royalblue", 0x4169e1 },
	{ "saddlebrown", 0x8b4513 },
	{ "salmon", 0xfa8072 },
	{ "sandybrown", 0xf4a460 },
	{ "seagreen", 0x2e8b57 },
	{ "seashell", 0xfff5ee },
	{ "sienna", 0xa0522d },
	{ "silver", 0xc0c0c0 },
	{ "skyblue", 0x87ceeb },
	{ "slateblue", 0x6a5acd },
	{ "slategray", 0x708090 },
	{ "slategrey", 0x708090 },
	{ "snow", 0xfffafa },
	{ "springgreen", 0x00ff7f },
	{ "steelblue", 0x4682b4 },
	{ "tan", 0xd2b48c },
	{ "teal", 0x008080 },
	{ "thistle", 0xd8bfd8 },
	{ "tomato", 0xff6347 },
	{ "turquoise", 0x40e0d0 },
	{ "violet", 0xee82ee },
	{ "wheat", 0xf5deb3 },
	{ "white", 0xffffff },
	{ "whitesmoke", 0xf5f5f5 },
	{ "yellow", 0xffff00 },
	{ "yellowgreen", 0x9acd32 },
};

static bool filter_htmlx_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if ((*list)[0] == name[0] && strcmp(name, *list) == 0)
			return true;
	return false;
}

static inline bool filter_htmlx_space(uint8_t c)   /* Perl's \s */
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* [^\s\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e]: a letter, digit or other non-ASCII character */
static inline bool filter_htmlx_word(uint8_t c)
{
	return !filter_htmlx_space(c) && !(c >= 0x21 && c <= 0x2f) && !(c >= 0x3a && c <= 0x40) &&
	       !(c >= 0x5b && c <= 0x60) && !(c >= 0x7b && c <= 0x7e);
}

static inline bool filter_htmlx_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int filter_htmlx_color_cmp(const void *k, const void *e)
{
	return strcmp(k, *(const char *const *)e);
}

/* dec2hex: "0" before a value under 16, then lower-case hex */
static size_t filter_htmlx_dec2hex(char *o, double d)
{
	uint64_t v = d >= 1.8e19 ? UINT64_MAX : d <= 0 ? 0 : (uint64_t)d;
	size_t n = 0;
	char t[17];
	size_t k = 0;

	if (v < 16)
		o[n++] = '0';
	do {
		t[k++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (k)
		o[n++] = t[--k];
	return n;
}

/* Reads up to three "(\d+)" separated as re asks: pct: "%," then \s*; else ",\s*". At s
 * just after "rgb(". Returns true and the values if the form matches up to ')'. */
static bool filter_htmlx_rgb_args(const char *s, const char *e, bool pct, double v_r[3])
{
	for (int k = 0; k < 3; k++) {
		const char *d = s;
		double v = 0;

		while (s < e && *s >= '0' && *s <= '9')
			v = v * 10 + (*s++ - '0');
		if (s == d)
			return false;
		v_r[k] = v;
		if (pct) {
			if (s >= e || *s++ != '%')
				return false;
		}
		if (k < 2) {
			if (s >= e || *s++ != ',')
				return false;
		}
		while (s < e && filter_htmlx_space((uint8_t)*s))
			s++;
	}
	return s < e && *s == ')';
}

/* name_to_rgb */
static struct filter_htmlx_color filter_htmlx_name_to_rgb(const char *v, size_t n)
{
	struct filter_htmlx_color col = { FILTER_HTMLX_COL_INVALID, 0 };
	char c[FILTER_HTMLX_VAL + 1], h[FILTER_HTMLX_VAL + 1];
	size_t s = 0, e = n, cl, hl = 0;
	bool ok = true, rgbform = false;

	while (s < e && filter_htmlx_space((uint8_t)v[s]))
		s++;
	while (e > s && filter_htmlx_space((uint8_t)v[e - 1]))
		e--;
	cl = e - s;
	if (cl > FILTER_HTMLX_VAL)
		cl = FILTER_HTMLX_VAL;
	for (size_t i = 0; i < cl; i++) {
		char x = v[s + i];

		c[i] = (char)(x >= 'A' && x <= 'Z' ? x | 0x20 : x);
	}
	c[cl] = '\0';
	{
		const void *f = NULL;

		if (cl && cl < 24) {
			const char *key = c;

			f = bsearch(key, filter_htmlx_colors, sizeof(filter_htmlx_colors) /
				    sizeof(filter_htmlx_colors[0]), sizeof(filter_htmlx_colors[0]),
				    filter_htmlx_color_cmp);
		}
		if (f) {
			col.kind = FILTER_HTMLX_COL_HEX;
			col.rgb = ((const struct filter_htmlx_named *)f)->rgb;
			return col;
		}
	}
	/* m/^[#a-f0-9]*$|rgb\([\d%, ]*\)/ */
	for (size_t i = 0; i < cl; i++)
		if (c[i] != '#' && !filter_htmlx_hex(c[i]))
			ok = false;
	for (const char *r = strstr(c, "rgb("); r && !rgbform; r = strstr(r + 1, "rgb(")) {
		const char *q = r + 4;

		while (*q && ((*q >= '0' && *q <= '9') || *q == '%' || *q == ',' || *q == ' '))
			q++;
		rgbform = *q == ')';
	}
	if (!ok && !rgbform)
		return col;
	/* rgb(p%, p%, p%), then rgb(d, d, d): the first place either matches */
	for (int pct = 1; pct >= 0; pct--)
		for (const char *r = strstr(c, "rgb("); r; r = strstr(r + 1, "rgb(")) {
			double rgb[3];

			if (filter_htmlx_rgb_args(r + 4, c + cl, pct, rgb)) {
				char t[3 * 20 + 2];
				size_t tl = 0;

				t[tl++] = '#';
				for (int k = 0; k < 3; k++)
					tl += filter_htmlx_dec2hex(t + tl, pct ? floor(rgb[k] / 100 * 255) : rgb[k]);
				memcpy(c, t, tl);
				cl = tl;
				c[cl] = '\0';
				break;
			}
		}
	if (cl == 0 || c[0] != '#')
		return col;
	for (size_t i = 0; i < cl; i++)
		if (filter_htmlx_hex(c[i]))
			h[hl++] = c[i];
	if (hl > 6)
		hl = 6;
	if (hl > 3 && hl < 6)
		hl = 3;
	while (hl % 3)
		h[hl++] = '0';
	if (hl == 3) {
		h[5] = h[2], h[4] = h[2], h[3] = h[1], h[2] = h[1], h[1] = h[0];
		hl = 6;
	}
	if (hl == 0) {
		col.kind = FILTER_HTMLX_COL_EMPTY;
		return col;
	}
	col.kind = FILTER_HTMLX_COL_HEX;
	for (size_t i = 0; i < 6; i++)
		col.rgb = col.rgb << 4 | (uint32_t)(h[i] <= '9' ? h[i] - '0' : h[i] - 'a' + 10);
	return col;
}

/* The style attribute's "rgb" branch: the digit runs of the first three comma fields, each
 * capped at 255. */
static struct filter_htmlx_color filter_htmlx_style_rgb(const char *v, size_t n)
{
	struct filter_htmlx_color col = { FILTER_HTMLX_COL_HEX, 0 };
	double f[3] = { 0, 0, 0 };
	int k = 0;

	for (size_t i = 0; i < n && k < 3; i++) {
		if (v[i] == ',')
			k++;
		else if (v[i] >= '0' && v[i] <= '9')
			f[k] = f[k] * 10 + (v[i] - '0');
	}
	for (k = 0; k < 3; k++)
		col.rgb = col.rgb << 8 | (uint32_t)(f[k] > 255 ? 255 : f[k]);
	return col;
}

/* Does v begin with the ASCII word w, any case? */
static bool filter_htmlx_prefix(const char *v, size_t n, const char *w)
{
	size_t wl = strlen(w);

	if (n < wl)
		return false;
	for (size_t i = 0; i < wl; i++)
		if ((v[i] >= 'A' && v[i] <= 'Z' ? v[i] | 0x20 : v[i]) != w[i])
			return false;
	return true;
}

/* "(.+?)\s*$" of what follows the colon and its blanks: the value, trimmed; false if none
 * (no character, or a newline inside). */
static bool filter_htmlx_css_value(const char *v, size_t n, size_t *s_r, size_t *e_r)
{
	size_t s = 0, e = n;

	while (s < n && filter_htmlx_space((uint8_t)v[s]))
		s++;
	while (e > s && filter_htmlx_space((uint8_t)v[e - 1]))
		e--;
	if (s == e) {
		/* only blanks: ".+?" takes one that is not a newline */
		for (size_t i = 0; i < n; i++)
			if (v[i] != '\n') {
				*s_r = *e_r = i;
				return true;
			}
		return false;
	}
	if (memchr(v + s, '\n', e - s))
		return false;
	*s_r = s;
	*e_r = e;
	return true;
}

/* parse_css_background: the first token of the last layer that is a colour */
static bool filter_htmlx_css_background(const char *v, size_t n, struct filter_htmlx_color *bg)
{
	struct filter_htmlx_color cur = { 0, 0 }, prev = { 0, 0 };
	bool cur_set = false, prev_set = false, cur_tokens = false, prev_layer = false;
	uint8_t stack[16], state = 0;
	unsigned sp = 0;
	char tok[FILTER_HTMLX_VAL];
	size_t tl = 0;
	bool have_tok = false;

#define FILTER_HTMLX_PUSH_TOKEN() do { \
		if (!cur_set) { \
			struct filter_htmlx_color c_ = filter_htmlx_name_to_rgb(tok, tl); \
			if (c_.kind != FILTER_HTMLX_COL_INVALID) { \
				cur = c_; \
				cur_set = true; \
			} \
		} \
		cur_tokens = true; \
		tl = 0; \
		have_tok = false; \
	} while (0)

	for (size_t i = 0; i < n; i++) {
		char ch = v[i];

		if (state == 0 && ch == ' ') {
			if (have_tok)
				FILTER_HTMLX_PUSH_TOKEN();
			continue;
		}
		if (state == 0 && ch == ',') {
			if (have_tok)
				FILTER_HTMLX_PUSH_TOKEN();
			prev = cur;
			prev_set = cur_set;
			prev_layer = true;
			cur_set = cur_tokens = false;
			continue;
		}
		if (tl < sizeof(tok))
			tok[tl++] = ch;
		have_tok = true;
		if ((state == 0 || state == 1) && (ch == '(' || ch == '"' || ch == '\'')) {
			if (sp < sizeof(stack))
				stack[sp++] = state;
			state = ch == '(' ? 1 : ch == '"' ? 2 : 3;
		} else if (state == 1 && ch == ')') {
			FILTER_HTMLX_PUSH_TOKEN();
			state = sp ? stack[--sp] : 0;
		} else if ((state == 2 && ch == '"') || (state == 3 && ch == '\'')) {
			state = sp ? stack[--sp] : 0;
		}
	}
	if (have_tok)
		FILTER_HTMLX_PUSH_TOKEN();
#undef FILTER_HTMLX_PUSH_TOKEN
	if (cur_tokens) {
		if (cur_set)
			*bg = cur;
		return cur_set;
	}
	if (prev_layer && prev_set)
		*bg = prev;
	return prev_layer && prev_set;
}

/* The style attribute: color, background-color, background (text_style's 'style' branch) */
static void filter_htmlx_style(struct filter_htmlx_style *nw, const struct filter_htmlx_style *parent,
			       const char *v, size_t n)
{
	size_t i = 0;

	while (i <= n) {
		const char *part = v + i, *semi = memchr(part, ';', n - i);
		size_t pl = semi ? (size_t)(semi - part) : n - i, k = 0;

		i += pl + 1;
		if (!pl)
			continue;
		while (k < pl && filter_htmlx_space((uint8_t)part[k]))
			k++;
		{
			bool bgc = filter_htmlx_prefix(part + k, pl - k, "background-color:");
			size_t s, e;

			if (bgc || filter_htmlx_prefix(part + k, pl - k, "color:")) {
				const char *r = part + k + (bgc ? 17 : 6);
				size_t rl = pl - k - (bgc ? 17 : 6);
				struct filter_htmlx_color *dst = bgc ? &nw->bg : &nw->fg;
				char lc[FILTER_HTMLX_VAL];
				size_t ll;

				if (!filter_htmlx_css_value(r, rl, &s, &e))
					continue;
				ll = e - s;
				for (size_t j = 0; j < ll; j++)
					lc[j] = (char)(r[s + j] >= 'A' && r[s + j] <= 'Z' ? r[s + j] | 0x20 : r[s + j]);
				/* s/\s*!\s*important$// */
				if (ll >= 9 && memcmp(lc + ll - 9, "important", 9) == 0) {
					size_t j = ll - 9;

					while (j && filter_htmlx_space((uint8_t)lc[j - 1]))
						j--;
					if (j && lc[j - 1] == '!') {
						j--;
						while (j && filter_htmlx_space((uint8_t)lc[j - 1]))
							j--;
						ll = j;
					}
				}
				if (ll >= 3 && memmem(lc, ll, "rgb", 3))
					*dst = filter_htmlx_style_rgb(lc, ll);
				else if (ll == 7 && memcmp(lc, "inherit", 7) == 0)
					;
				else if (ll == 11 && memcmp(lc, "transparent", 11) == 0)
					dst->kind = FILTER_HTMLX_COL_TRANSPARENT;
				else
					*dst = filter_htmlx_name_to_rgb(lc, ll);
			} else if (pl - k >= 11 && memcmp(part + k, "background:", 11) == 0) {
				const char *r = part + k + 11;
				char lc[FILTER_HTMLX_VAL];

				if (!filter_htmlx_css_value(r, pl - k - 11, &s, &e))
					continue;
				for (size_t j = s; j < e; j++)
					lc[j - s] = (char)(r[j] >= 'A' && r[j] <= 'Z' ? r[j] | 0x20 : r[j]);
				filter_htmlx_css_background(lc, e - s, &nw->bg);
			}
		}
	}
	if (nw->bg.kind == FILTER_HTMLX_COL_TRANSPARENT)
		nw->bg = parent->bg;
	if (nw->fg.kind == FILTER_HTMLX_COL_TRANSPARENT)
		nw->fg = nw->bg;
}

/* /^\s*(\d+)/ and /^\s*([+-]\d+)/ */
static bool filter_htmlx_number(const char *v, size_t n, bool sign, double *v_r)
{
	size_t i = 0;
	double x = 0, sg = 1;

	while (i < n && filter_htmlx_space((uint8_t)v[i]))
		i++;
	if (sign) {
		if (i >= n || (v[i] != '+' && v[i] != '-'))
			return false;
		sg = v[i++] == '-' ? -1 : 1;
	}
	if (i >= n || v[i] < '0' || v[i] > '9')
		return false;
	while (i < n && v[i] >= '0' && v[i] <= '9')
		x = x * 10 + (v[i++] - '0');
	*v_r = sg * x;
	return true;
}

/* /^(\d+)(\%)?$/ ('$': a final newline may follow) */
static double filter_htmlx_dimension(const char *v, size_t n, double pct_mul)
{
	size_t i = 0;
	double x = 0;

	if (n && v[n - 1] == '\n')
		n--;
	while (i < n && v[i] >= '0' && v[i] <= '9')
		x = x * 10 + (v[i++] - '0');
	if (i == 0)
		return 0;
	if (i == n)
		return x;
	if (i + 1 == n && v[i] == '%')
		return x * pct_mul;
	return 0;
}

/* [a-z ][a-z -]*[a-z]\d? (first_space: the first may be a space), the whole of v */
static bool filter_htmlx_face_name(const char *v, size_t n, bool first_space)
{
#define FILTER_HTMLX_LETTER(c) ((((c) | 0x20) >= 'a' && ((c) | 0x20) <= 'z'))
	size_t last;

	if (n && v[n - 1] >= '0' && v[n - 1] <= '9')
		n--;
	if (n < 2)
		return false;
	if (!FILTER_HTMLX_LETTER(v[0]) && !(first_space && v[0] == ' '))
		return false;
	last = n - 1;
	if (!FILTER_HTMLX_LETTER(v[last]))
		return false;
	for (size_t i = 1; i < last; i++)
		if (!FILTER_HTMLX_LETTER(v[i]) && v[i] != ' ' && v[i] != '-')
			return false;
	return true;
}

/* /^\s*["'.]?[a-z ][a-z -]*[a-z]\d?["']?(?:,\s*["']?[a-z][a-z -]*[a-z]\d?["']?)*;?$/i */
static bool filter_htmlx_face_ok(const char *v, size_t n)
{
	size_t i = 0;
	bool first = true;

	if (n && v[n - 1] == '\n')
		n--;
	if (n && v[n - 1] == ';')
		n--;
	while (i <= n) {
		const char *seg = v + i, *comma = memchr(seg, ',', n - i);
		size_t sl = comma ? (size_t)(comma - seg) : n - i, k = 0;
		bool lastsp = false, quoted = false;

		while (k < sl && filter_htmlx_space((uint8_t)seg[k]))
			lastsp = seg[k++] == ' ';
		if (k < sl && (seg[k] == '"' || seg[k] == '\'' || (first && seg[k] == '.'))) {
			k++;
			quoted = true;
		}
		if (sl > k && (seg[sl - 1] == '"' || seg[sl - 1] == '\''))
			sl--;
		if (!filter_htmlx_face_name(seg + k, sl - k, first) &&
		    !(first && !quoted && lastsp && sl > k &&
		      filter_htmlx_face_name(seg + k - 1, sl - k + 1, true)))
			return false;
		first = false;
		i += (comma ? (size_t)(comma - seg) : n - i) + 1;
		if (!comma)
			break;
	}
	return true;
#undef FILTER_HTMLX_LETTER
}

/* --- the part being read ------------------------------------------------------------------ */

static void filter_htmlx_attrs_reset(struct filter_eval_htmlx_state *x)
{
	x->ast = FILTER_HTMLX_AS_SEP;
	x->anlen = 0;
	x->acur = -1;
	memset(x->aseen, 0, sizeof(x->aseen));
}

static void filter_htmlx_part_reset(struct filter_eval_htmlx_state *x)
{
	x->nstack = 1;
	x->stack[0] = (struct filter_htmlx_style){
		.tag = FILTER_HTMLX_T_DEFAULT,
		.fg = { FILTER_HTMLX_COL_HEX, 0x000000 },
		.bg = { FILTER_HTMLX_COL_HEX, 0xffffff },
		.size = 3,
	};
	x->basefont = 3;
	x->max_size = x->min_size = 3;
	x->tags = x->elements = x->tags_seen = x->elements_seen = 0;
	x->closed_extra = x->obfuscation = 0;
	x->image_area = x->non_space_len = 0;
	x->in_script = x->in_style = x->in_title = 0;
	x->flags = 0;
	memset(x->name_hash, 0, sizeof(x->name_hash));
	x->nnames = 0;
	x->text_active = x->text_nonws = x->have_elem = x->prev_word = x->cur_word = false;
	x->nbsp = 0;
	x->title_run = x->title_len = x->title_max = 0;
	x->decl = 0;
	filter_htmlx_attrs_reset(x);
}

/* The slot of name in the part's table of names seen; *fresh_r: first time. -1: full. */
static int filter_htmlx_name_slot(struct filter_eval_htmlx_state *x, const char *name, size_t n,
				  bool *fresh_r)
{
	uint64_t hv = 14695981039346656037ull;
	uint32_t k;

	for (size_t i = 0; i < n; i++)
		hv = (hv ^ (uint8_t)name[i]) * 1099511628211ull;
	hv |= 1;
	k = (uint32_t)hv & (FILTER_HTMLX_NAMES - 1);
	for (uint32_t probe = 0; probe < FILTER_HTMLX_NAMES; probe++, k = (k + 1) & (FILTER_HTMLX_NAMES - 1)) {
		if (x->name_hash[k] == hv) {
			*fresh_r = false;
			return (int)k;
		}
		if (x->name_hash[k] == 0) {
			if (x->nnames + 1 >= FILTER_HTMLX_NAMES)
				break;
			x->name_hash[k] = hv;
			x->name_inside[k] = 0;
			x->nnames++;
			*fresh_r = true;
			return (int)k;
		}
	}
	*fresh_r = false;
	return -1;
}

static bool filter_htmlx_stack_has(const struct filter_eval_htmlx_state *x, uint8_t tag)
{
	for (uint32_t i = 0; i < x->nstack; i++)
		if (x->stack[i].tag == tag)
			return true;
	return false;
}

/* close_tag: pops up to and including the newest style of tag, if there is one */
static void filter_htmlx_close_tag(struct filter_eval_htmlx_state *x, uint8_t tag)
{
	if (!filter_htmlx_stack_has(x, tag))
		return;
	while (x->nstack > 1)
		if (x->stack[--x->nstack].tag == tag)
			break;
}

/* close_table_tag: a td or tr start closes the font and td (and tr) styles on top */
static void filter_htmlx_close_table_tag(struct filter_eval_htmlx_state *x, uint8_t tag)
{
	if (!filter_htmlx_stack_has(x, tag))
		return;
	while (x->nstack > 1) {
		uint8_t top = x->stack[x->nstack - 1].tag;

		if (top == FILTER_HTMLX_T_FONT || top == FILTER_HTMLX_T_TD ||
		    (tag == FILTER_HTMLX_T_TR && top == FILTER_HTMLX_T_TR))
			x->nstack--;
		else
			break;
	}
}

static void filter_htmlx_push(struct filter_eval_htmlx_state *x, const struct filter_htmlx_style *nw)
{
	if (x->nstack < FILTER_HTMLX_STACK)
		x->nstack++;
	x->stack[x->nstack - 1] = *nw;
}

/* Is attribute a (FILTER_HTMLX_A_*) one text_style reads for tag t? (%ok_attributes) */
static bool filter_htmlx_ok_attr(uint8_t t, int a)
{
	switch (t) {
	case FILTER_HTMLX_T_BASEFONT:
	case FILTER_HTMLX_T_FONT:
		return a == FILTER_HTMLX_A_COLOR || a == FILTER_HTMLX_A_FACE || a == FILTER_HTMLX_A_SIZE;
	case FILTER_HTMLX_T_BODY:
		return a == FILTER_HTMLX_A_TEXT;
	case FILTER_HTMLX_T_TABLE:
	case FILTER_HTMLX_T_TD:
	case FILTER_HTMLX_T_TR:
	case FILTER_HTMLX_T_SPAN:
	case FILTER_HTMLX_T_P:
	case FILTER_HTMLX_T_DIV:
	case FILTER_HTMLX_T_A:
		return a == FILTER_HTMLX_A_STYLE;
	default:
		return false;
	}
}

/* text_style */
static void filter_htmlx_text_style(struct filter_eval_htmlx_state *x, uint8_t t, bool closing)
{
	struct filter_htmlx_style nw;

	if (closing) {
		if (t != FILTER_HTMLX_T_BODY)
			filter_htmlx_close_tag(x, t);
		return;
	}
	if (t == FILTER_HTMLX_T_BASEFONT && x->aseen[FILTER_HTMLX_A_SIZE] &&
	    filter_htmlx_number(x->aval[FILTER_HTMLX_A_SIZE], x->alen[FILTER_HTMLX_A_SIZE], false,
				&x->basefont))
		return;
	if (t == FILTER_HTMLX_T_TD || t == FILTER_HTMLX_T_TR)
		filter_htmlx_close_table_tag(x, t);
	nw = x->stack[x->nstack - 1];
	nw.tag = t;
	if (t == FILTER_HTMLX_T_BIG || t == FILTER_HTMLX_T_SMALL) {
		nw.size += t == FILTER_HTMLX_T_BIG ? 1 : -1;
		filter_htmlx_push(x, &nw);
		return;
	}
	for (int a = 0; a < FILTER_HTMLX_A_N; a++) {
		const char *v = x->aval[a];
		size_t n = x->alen[a];
		double d;

		if (!x->aseen[a] || !filter_htmlx_ok_attr(t, a))
			continue;
		if (a == FILTER_HTMLX_A_COLOR || a == FILTER_HTMLX_A_TEXT) {
			nw.fg = filter_htmlx_name_to_rgb(v, n);
		} else if (a == FILTER_HTMLX_A_SIZE) {
			if (filter_htmlx_number(v, n, true, &d))
				nw.size = x->basefont + d;
			else if (filter_htmlx_number(v, n, false, &d))
				nw.size = d;
		} else if (a == FILTER_HTMLX_A_STYLE) {
			filter_htmlx_style(&nw, &x->stack[x->nstack - 1], v, n);
		}
		if (nw.size > x->max_size)
			x->max_size = nw.size;
		else if (nw.size < x->min_size)
			x->min_size = nw.size;
	}
	filter_htmlx_push(x, &nw);
}

/* html_tests, for the results kept */
static void filter_htmlx_tests(struct filter_eval_htmlx_state *x, const char *name)
{
	if (strcmp(name, "font") == 0 && x->aseen[FILTER_HTMLX_A_FACE] &&
	    !filter_htmlx_face_ok(x->aval[FILTER_HTMLX_A_FACE], x->alen[FILTER_HTMLX_A_FACE]))
		x->flags |= FILTER_HTMLX_F_FACE_BAD;
	if (strcmp(name, "img") == 0 && x->aseen[FILTER_HTMLX_A_WIDTH] && x->aseen[FILTER_HTMLX_A_HEIGHT]) {
		double w = filter_htmlx_dimension(x->aval[FILTER_HTMLX_A_WIDTH], x->alen[FILTER_HTMLX_A_WIDTH], 8);
		double h = filter_htmlx_dimension(x->aval[FILTER_HTMLX_A_HEIGHT], x->alen[FILTER_HTMLX_A_HEIGHT], 6);

		if (w <= 0)
			w = 200;
		if (h <= 0)
			h = 200;
		x->image_area += w * h;
	}
	if (strcmp(name, "form") == 0 && x->aseen[FILTER_HTMLX_A_ACTION]) {
		const char *v = x->aval[FILTER_HTMLX_A_ACTION];
		size_t n = x->alen[FILTER_HTMLX_A_ACTION];

		for (size_t i = 0; i + 7 <= n; i++)
			if (filter_htmlx_prefix(v + i, n - i, "mailto:")) {
				x->flags |= FILTER_HTMLX_F_MAILTO;
				break;
			}
	}
	if (strcmp(name, "object") == 0 || strcmp(name, "embed") == 0)
		x->flags |= FILTER_HTMLX_F_EMBEDS;
	if (strcmp(name, "title") == 0)
		x->title_run = x->title_len = 0;   /* a new title string */
}

static void filter_htmlx_title_check(struct filter_eval_htmlx_state *x);

/* The text element before this markup is complete. */
static void filter_htmlx_elem_end(struct filter_eval_htmlx_state *x)
{
	if (x->nbsp) {
		x->nbsp = 0;
		x->cur_word = false;
		filter_htmlx_title_check(x);
	}
	if (x->text_active) {
		x->prev_word = x->cur_word;
		x->text_active = false;
	}
}

void filter_eval_htmlx_tag(struct filter_msg *fm, const char *name, size_t nlen, bool closing)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;
	char nm[FILTER_HTML_TAG_LEN + 1];
	bool fresh, element, ns;
	int slot;
	uint8_t t = FILTER_HTMLX_T_NONE;

	if (!x->in_part)
		return;
	filter_htmlx_elem_end(x);
	if (nlen > FILTER_HTML_TAG_LEN)
		nlen = FILTER_HTML_TAG_LEN;
	memcpy(nm, name, nlen);
	nm[nlen] = '\0';
	/* html_tag */
	element = filter_htmlx_in(nm, filter_htmlx_elements);
	ns = (nm[0] == 'o' && nm[1] == ':') ||
	     (nm[0] == 's' && nm[1] == 't' && nm[2] >= '0' && nm[2] <= '9' && nm[3] == ':');
	if (ns) {   /* ^(?:o|st\d):[\w-]+/?$ */
		size_t i = nm[0] == 'o' ? 2 : 4, s = i;

		while (i < nlen && (nm[i] == '_' || nm[i] == '-' || (nm[i] >= '0' && nm[i] <= '9') ||
				    (nm[i] >= 'a' && nm[i] <= 'z') || (uint8_t)nm[i] >= 0x80))
			i++;
		ns = i > s && (i == nlen || (i + 1 == nlen && nm[i] == '/'));
	}
	slot = filter_htmlx_name_slot(x, nm, nlen, &fresh);
	if (element || ns) {
		x->elements++;
		if (fresh)
			x->elements_seen++;
	}
	x->tags++;
	if (fresh)
		x->tags_seen++;
	if (slot >= 0) {
		x->name_inside[slot] += closing ? -1 : 1;
		if (x->name_inside[slot] < 0) {
			x->name_inside[slot] = 0;
			x->closed_extra++;
		}
	}
	{
		int32_t *in = strcmp(nm, "script") == 0 ? &x->in_script : strcmp(nm, "style") == 0 ?
			      &x->in_style : strcmp(nm, "title") == 0 ? &x->in_title : NULL;

		if (in) {
			*in += closing ? -1 : 1;
			if (*in < 0)
				*in = 0;
		}
	}
	if (ns || (!element && !filter_htmlx_in(nm, filter_htmlx_tricks)))
		goto done;
	for (uint8_t k = 1; k < FILTER_HTMLX_T_NONE; k++)
		if (strcmp(nm, filter_htmlx_style_tags[k]) == 0)
			t = k;
	if (strcmp(nm, "th") == 0)
		t = FILTER_HTMLX_T_TD;
	if (t != FILTER_HTMLX_T_NONE)
		filter_htmlx_text_style(x, t, closing);
	if (filter_htmlx_in(nm, filter_htmlx_ws_tags)) {
		/* a white space element of the rendered text */
		x->have_elem = true;
		x->prev_word = false;
	}
	if (!closing)
		filter_htmlx_tests(x, nm);
done:
	filter_htmlx_attrs_reset(x);
}

/* html_font_invisible's colour tests, for text drawn now */
static void filter_htmlx_font(struct filter_eval_htmlx_state *x)
{
	const struct filter_htmlx_style *s = &x->stack[x->nstack - 1];
	const struct filter_htmlx_color *fg = &s->fg, *bg = &s->bg;

	/* substr($fg, -6) eq substr($bg, -6) */
	if (fg->kind == bg->kind && (fg->kind != FILTER_HTMLX_COL_HEX || fg->rgb == bg->rgb)) {
		x->flags |= FILTER_HTMLX_F_LOW_CONTRAST;
		return;
	}
	if (fg->kind == FILTER_HTMLX_COL_HEX && bg->kind == FILTER_HTMLX_COL_HEX) {
		double r = (double)(fg->rgb >> 16) - (double)(bg->rgb >> 16);
		double g = (double)(fg->rgb >> 8 & 0xff) - (double)(bg->rgb >> 8 & 0xff);
		double b = (double)(fg->rgb & 0xff) - (double)(bg->rgb & 0xff);

		if (sqrt(pow(0.2126 * r, 2) + pow(0.7152 * g, 2) + pow(0.0722 * b, 2)) < 12) {
			x->flags |= FILTER_HTMLX_F_LOW_CONTRAST;
			return;
		}
	}
	if (fg->kind == FILTER_HTMLX_COL_INVALID || bg->kind == FILTER_HTMLX_COL_INVALID)
		x->flags |= FILTER_HTMLX_F_INVALID;
}

/* The title's lengths, once no "&nbsp;" (one character) is half read */
static void filter_htmlx_title_check(struct filter_eval_htmlx_state *x)
{
	if (x->nbsp)
		return;
	if (x->title_len > x->title_max)
		x->title_max = x->title_len;
	if (x->title_run >= 120)
		x->flags |= FILTER_HTMLX_F_TITLE120;
}

/* One byte of a text element (html_text) */
static void filter_htmlx_text_byte(struct filter_eval_htmlx_state *x, uint8_t c)
{
	static const char nbsp[] = "&nbsp;";
	bool word = filter_htmlx_word(c);

	if (x->in_script > 0 || x->in_style > 0)
		return;
	if (!x->text_active) {
		/* a new text element: split from the last one inside a word? */
		if (x->have_elem && x->prev_word && word)
			x->obfuscation++;
		x->text_active = true;
		x->text_nonws = false;
		x->have_elem = true;
	}
	/* "&nbsp;" is white space */
	if (x->nbsp && c == (uint8_t)nbsp[x->nbsp]) {
		if (++x->nbsp == 6) {
			x->nbsp = 0;
			if (x->in_title > 0) {   /* one character, a space */
				x->title_run -= 4;
				x->title_len -= 5;
				goto title;
			}
		}
		x->cur_word = false;
		goto title;
	}
	if (x->nbsp) {
		x->nbsp = 0;
		if (!x->text_nonws) {
			x->text_nonws = true;
			filter_htmlx_font(x);
		}
	}
	if (c == '&') {
		x->nbsp = 1;
	} else if (!filter_htmlx_space(c) && !x->text_nonws) {
		x->text_nonws = true;
		filter_htmlx_font(x);
	}
	x->cur_word = word;
title:
	if (x->in_title > 0 && (c & 0xc0) != 0x80) {
		x->title_len++;
		if (c == '\n')
			x->title_run = 0;
		else
			x->title_run++;
		filter_htmlx_title_check(x);
	}
}

void filter_eval_htmlx_text(struct filter_msg *fm, uint8_t c)
{
	if (fm->ev_htmlx.in_part)
		filter_htmlx_text_byte(&fm->ev_htmlx, c);
}

void filter_eval_htmlx_text_lt(struct filter_msg *fm, bool slash, uint8_t c)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;

	if (!x->in_part)
		return;
	filter_htmlx_text_byte(x, '<');
	if (slash)
		filter_htmlx_text_byte(x, '/');
	if (c != '<')
		filter_htmlx_text_byte(x, c);
}

void filter_eval_htmlx_markup(struct filter_msg *fm)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;

	if (!x->in_part)
		return;
	filter_htmlx_elem_end(x);
	x->decl = 0;
}

/* html_declaration: "<!doctype" counts as a tag and an element */
void filter_eval_htmlx_decl(struct filter_msg *fm, uint8_t c, bool first)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;
	static const char dt[] = "doctype";

	if (!x->in_part)
		return;
	if (first)
		x->decl = 0;
	if (x->decl >= 7)
		return;
	if ((c | 0x20) == (uint8_t)dt[x->decl]) {
		if (++x->decl == 7) {
			bool fresh;

			x->tags++;
			x->elements++;
			filter_htmlx_name_slot(x, "!doctype", 8, &fresh);
			x->decl = 8;
		}
	} else {
		x->decl = 8;
	}
}

static void filter_htmlx_name_end(struct filter_eval_htmlx_state *x)
{
	x->acur = -1;
	x->aname[x->anlen] = '\0';
	for (int a = 0; a < FILTER_HTMLX_A_N; a++)
		if (strcmp(x->aname, filter_htmlx_attrs[a]) == 0 && !x->aseen[a]) {
			/* no value yet: HTML::Parser gives the name as the value */
			x->aseen[a] = true;
			memcpy(x->aval[a], x->aname, x->anlen);
			x->alen[a] = x->anlen;
			x->acur = (int8_t)a;
		}
	x->anlen = 0;
}

static inline void filter_htmlx_val_byte(struct filter_eval_htmlx_state *x, uint8_t c)
{
	if (x->acur >= 0 && x->alen[x->acur] < FILTER_HTMLX_VAL)
		x->aval[x->acur][x->alen[x->acur]++] = (char)c;
}

void filter_eval_htmlx_attr(struct filter_msg *fm, uint8_t c)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;
	bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';

	if (!x->in_part)
		return;
	switch (x->ast) {
	case FILTER_HTMLX_AS_SEP:
		if (c == '=') {
			x->acur = -1;
			x->ast = FILTER_HTMLX_AS_EQ;
		} else if (!space && c != '/' && c != '>') {
			x->aname[0] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
			x->anlen = 1;
			x->ast = FILTER_HTMLX_AS_NAME;
		}
		break;
	case FILTER_HTMLX_AS_NAME:
		if (space || c == '/' || c == '>' || c == '=') {
			filter_htmlx_name_end(x);
			x->ast = c == '=' ? FILTER_HTMLX_AS_EQ : space ? FILTER_HTMLX_AS_AFTER_NAME :
				 FILTER_HTMLX_AS_SEP;
			if (c == '=' && x->acur >= 0)
				x->alen[x->acur] = 0;
		} else if (x->anlen < sizeof(x->aname) - 1) {
			x->aname[x->anlen++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
		} else {
			x->aname[0] = '\x01';   /* too long: no name we read */
		}
		break;
	case FILTER_HTMLX_AS_AFTER_NAME:
		if (c == '=') {
			if (x->acur >= 0)
				x->alen[x->acur] = 0;
			x->ast = FILTER_HTMLX_AS_EQ;
		} else if (!space && c != '/' && c != '>') {
			x->aname[0] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
			x->anlen = 1;
			x->ast = FILTER_HTMLX_AS_NAME;
		} else if (!space) {
			x->ast = FILTER_HTMLX_AS_SEP;
		}
		break;
	case FILTER_HTMLX_AS_EQ:
		if (c == '"' || c == '\'') {
			x->aquote = c;
			x->ast = FILTER_HTMLX_AS_VALQ;
		} else if (c == '>') {
			x->ast = FILTER_HTMLX_AS_SEP;
		} else if (!space) {
			filter_htmlx_val_byte(x, c);
			x->ast = FILTER_HTMLX_AS_VALU;
		}
		break;
	case FILTER_HTMLX_AS_VALQ:
		if (c == x->aquote)
			x->ast = FILTER_HTMLX_AS_SEP;
		else
			filter_htmlx_val_byte(x, c);
		break;
	case FILTER_HTMLX_AS_VALU:
		if (space || c == '>')
			x->ast = FILTER_HTMLX_AS_SEP;
		else
			filter_htmlx_val_byte(x, c);
		break;
	}
}

void filter_eval_htmlx_rendered(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;

	if (!x->in_part)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if ((c & 0xc0) == 0x80 || filter_htmlx_space(c))
			continue;
		if (c == 0xc2 && i + 1 < n && p[i + 1] == 0xa0)
			continue;   /* U+00A0 is \s too */
		x->non_space_len++;
	}
}

void filter_eval_htmlx_part(struct filter_msg *fm, bool html, uint32_t len)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;

	if (!fm->db->htmlx)
		return;
	if (x->in_part && len && x->nparts < FILTER_HTMLX_PARTS) {
		struct filter_htmlx_part *r = &x->parts[x->nparts++];

		filter_htmlx_elem_end(x);
		memset(r, 0, sizeof(*r));
		r->len = len;
		r->max_size = x->max_size;
		r->flags = x->flags;
		r->non_space_len = x->non_space_len;
		r->image_area = x->image_area;
		r->title_max = x->title_max;
		if (x->tags) {
			r->defined |= FILTER_HTMLX_D_TAGS;
			r->closed_extra_ratio = (double)x->closed_extra / x->tags;
			if (x->elements) {
				r->defined |= FILTER_HTMLX_D_BAD_TAG;
				r->bad_tag_ratio = ((double)x->tags - x->elements) / x->tags;
			}
			if (x->obfuscation) {
				r->defined |= FILTER_HTMLX_D_OBFUSCATION;
				r->obfuscation_ratio = (double)x->obfuscation / x->tags;
			}
		}
		if (x->elements_seen && x->tags_seen) {
			r->defined |= FILTER_HTMLX_D_NON_ELEMENT;
			r->non_element_ratio = ((double)x->tags_seen - x->elements_seen) / x->tags_seen;
		}
	}
	x->in_part = html;
	if (html)
		filter_htmlx_part_reset(x);
}

/* --- the evals ---------------------------------------------------------------------------- */

static bool filter_htmlx_num(const char *s, double *v_r)
{
	char *e;

	if (!s)
		return false;
	*v_r = strtod(s, &e);
	return e != s && *e == '\0';
}

/* eval_tag: the flag, value or comparison the rule reads; -1: never hits (arguments HTMLEval
 * would not take). eval_arg: min and max (max HUGE_VAL for 'inf' or none). */
int filter_eval_htmlx_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len)
{
	char *buf = strndup(args, len), *p = buf, *a0, *a1, *a2;
	static const char *const flags[] = { "font_low_contrast", "font_invalid_color",
					     "font_face_bad", "form_action_mailto", "embeds" };
	static const uint8_t flagbits[] = { FILTER_HTMLX_F_LOW_CONTRAST, FILTER_HTMLX_F_INVALID,
					    FILTER_HTMLX_F_FACE_BAD, FILTER_HTMLX_F_MAILTO,
					    FILTER_HTMLX_F_EMBEDS };
	static const char *const values[] = { "max_size", "closed_extra_ratio", "bad_tag_ratio",
					      "non_element_ratio", "obfuscation_ratio" };

	if (!buf)
		return -ENOMEM;
	db->htmlx = true;
	ru->eval_tag = -1;
	ru->eval_arg[0] = 0;
	ru->eval_arg[1] = HUGE_VAL;
	switch (ru->eval) {
	case RULES_EVAL_HTMLX_TEST:
		a0 = filter_eval_quoted(&p);
		for (size_t i = 0; a0 && i < sizeof(flags) / sizeof(flags[0]); i++)
			if (strcmp(a0, flags[i]) == 0)
				ru->eval_tag = flagbits[i];
		break;
	case RULES_EVAL_HTMLX_TITLE120:
		ru->eval_tag = FILTER_HTMLX_F_TITLE120;
		break;
	case RULES_EVAL_HTMLX_TITLE_SUBJ:
		a0 = filter_eval_quoted(&p);
		if (filter_htmlx_num(a0, &ru->eval_arg[0]))
			ru->eval_tag = 0;
		break;
	case RULES_EVAL_HTMLX_CHARSET_FARAWAY:
		/* XXX: sluice-rules does not read ok_locales; at its default, "all", HTMLEval's
		 * html_charset_faraway never hits, and neither does this */
		break;
	case RULES_EVAL_HTMLX_RANGE:
	case RULES_EVAL_HTMLX_IMAGE_RATIO:
		a0 = ru->eval == RULES_EVAL_HTMLX_RANGE ? filter_eval_quoted(&p) : NULL;
		a1 = filter_eval_quoted(&p);
		a2 = filter_eval_quoted(&p);
		if (!filter_htmlx_num(a1, &ru->eval_arg[0]))
			break;
		if (a2 && strcmp(a2, "inf") != 0 && !filter_htmlx_num(a2, &ru->eval_arg[1]))
			break;
		if (ru->eval == RULES_EVAL_HTMLX_IMAGE_RATIO) {
			ru->eval_tag = 0;
			break;
		}
		for (size_t i = 0; a0 && i < sizeof(values) / sizeof(values[0]); i++)
			if (strcmp(a0, values[i]) == 0)
				ru->eval_tag = (int)i;
		break;
	case RULES_EVAL_HTMLX_EVAL: {
		/* html_eval('length', 'op n'): /^[<>=!\-+ 0-9]+$/, as a Perl comparison */
		const char *e;
		int op = 0;

		a0 = filter_eval_quoted(&p);
		a1 = filter_eval_quoted(&p);
		if (!a0 || !a1 || strcmp(a0, "length") != 0)
			break;
		e = a1;
		while (*e == ' ')
			e++;
		if (e[0] == '<' && e[1] == '=')
			op = FILTER_HTMLX_CMP_LE, e += 2;
		else if (e[0] == '>' && e[1] == '=')
			op = FILTER_HTMLX_CMP_GE, e += 2;
		else if (e[0] == '=' && e[1] == '=')
			op = FILTER_HTMLX_CMP_EQ, e += 2;
		else if (e[0] == '!' && e[1] == '=')
			op = FILTER_HTMLX_CMP_NE, e += 2;
		else if (e[0] == '<')
			op = FILTER_HTMLX_CMP_LT, e++;
		else if (e[0] == '>')
			op = FILTER_HTMLX_CMP_GT, e++;
		while (*e == ' ')
			e++;
		if (op && filter_htmlx_num(e, &ru->eval_arg[0]))
			ru->eval_tag = op;
		break;
	}
	default:
		break;
	}
	free(buf);
	return 0;
}

void filter_eval_htmlx_begin(struct filter_msg *fm)
{
	struct filter_eval_htmlx_state *x = &fm->ev_htmlx;

	x->in_part = false;
	x->nparts = 0;
}

static double filter_htmlx_value(const struct filter_htmlx_part *r, int v, bool *def_r)
{
	static const uint8_t need[] = { 0, FILTER_HTMLX_D_TAGS, FILTER_HTMLX_D_BAD_TAG,
					FILTER_HTMLX_D_NON_ELEMENT, FILTER_HTMLX_D_OBFUSCATION };

	*def_r = !need[v] || (r->defined & need[v]);
	switch (v) {
	case FILTER_HTMLX_V_MAX_SIZE:     return r->max_size;
	case FILTER_HTMLX_V_CLOSED_EXTRA: return r->closed_extra_ratio;
	case FILTER_HTMLX_V_BAD_TAG:      return r->bad_tag_ratio;
	case FILTER_HTMLX_V_NON_ELEMENT:  return r->non_element_ratio;
	default:                          return r->obfuscation_ratio;
	}
}

/* Characters of the decoded Subject, as $pms->get('Subject') has it; 0 if none. */
static size_t filter_htmlx_subject_len(const struct filter_msg *fm)
{
	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];
		size_t n = 0;

		if (h->name_len != 7 || strncasecmp(fm->arena + h->name_off, "subject", 7) != 0)
			continue;
		for (uint32_t k = 0; k < h->dec_len; k++)
			n += ((uint8_t)fm->arena[h->dec_off + k] & 0xc0) != 0x80;
		return n + FILTER_HTMLX_SUBJ_EXTRA;
	}
	return 0;
}

bool filter_eval_htmlx_test(struct filter_msg *fm, const struct filter_rule *ru)
{
	const struct filter_eval_htmlx_state *x = &fm->ev_htmlx;
	size_t subj = 0;

	if (ru->eval_tag < 0)
		return false;
	if (ru->eval == RULES_EVAL_HTMLX_TITLE_SUBJ && (subj = filter_htmlx_subject_len(fm)) == 0)
		return false;
	for (uint32_t i = 0; i < x->nparts; i++) {
		const struct filter_htmlx_part *r = &x->parts[i];
		double v, lo = ru->eval_arg[0], hi = ru->eval_arg[1];
		bool def;

		switch (ru->eval) {
		case RULES_EVAL_HTMLX_TEST:
		case RULES_EVAL_HTMLX_TITLE120:
			if (r->flags & ru->eval_tag)
				return true;
			break;
		case RULES_EVAL_HTMLX_RANGE:
			v = filter_htmlx_value(r, ru->eval_tag, &def);
			if (def && v > lo && (hi == HUGE_VAL || v <= hi))
				return true;
			break;
		case RULES_EVAL_HTMLX_IMAGE_RATIO:
			if (r->image_area > 0) {
				v = r->non_space_len / r->image_area;
				if (v > lo && v <= hi)
					return true;
			}
			break;
		case RULES_EVAL_HTMLX_TITLE_SUBJ:
			if ((double)r->title_max / (double)subj > lo)
				return true;
			break;
		case RULES_EVAL_HTMLX_EVAL:
			v = r->len;
			switch (ru->eval_tag) {
			case FILTER_HTMLX_CMP_LT: if (v < lo) return true; break;
			case FILTER_HTMLX_CMP_LE: if (v <= lo) return true; break;
			case FILTER_HTMLX_CMP_GT: if (v > lo) return true; break;
			case FILTER_HTMLX_CMP_GE: if (v >= lo) return true; break;
			case FILTER_HTMLX_CMP_EQ: if (v == lo) return true; break;
			default:                  if (v != lo) return true; break;
			}
			break;
		default:
			return false;
		}
	}
	return false;
}
