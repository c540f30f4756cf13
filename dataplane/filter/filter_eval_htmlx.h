/*
 * filter_eval_htmlx.h - the evals of ids RULES_EVAL_HTML_FIRST.. (patterns/compiler/rules_format.h):
 * the rest of HTMLEval (font, image ratio, obfuscation, tag ratios, title) and the URI tests, after SpamAssassin 4.0's plugins of those names.
 *
 * The values are those Mail::SpamAssassin::HTML computes for each text/html part: its stack of
 * text styles (colours from font color, body text and the style attributes' color,
 * background-color and background; sizes from font size, basefont, big and small) and the
 * contrast of the text drawn with them; the largest font size; the area of the img elements
 * with width and height against the part's rendered non-space characters; tags against
 * elements HTML 4 knows; text split by markup inside words; title lengths. They come from the
 * tag tokenizer of filter_eval.c (filter_eval_html_feed) through the hooks below, and the
 * rendered text from filter_msg.c. Bounded state, linear time, no allocation.
 *
 * Shard thread; the per-message state is struct filter_eval_htmlx_state inside struct filter_msg
 * (reset by filter_eval_htmlx_begin at each message).
 */
#ifndef SLUICE_FILTER_EVAL_HTMLX_H
#define SLUICE_FILTER_EVAL_HTMLX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct filter_db;
struct filter_rule;
struct filter_msg;

#define FILTER_HTMLX_STACK   128u  /* text styles kept (HTML.pm's text_style); deeper: the top
				    * is replaced */
#define FILTER_HTMLX_NAMES   256u  /* distinct tag names counted per part */
#define FILTER_HTMLX_PARTS   8u    /* HTML parts whose results are kept */
#define FILTER_HTMLX_VAL     1024u /* bytes kept of an attribute value (the rest: cut) */

/* a colour as HTML.pm's name_to_rgb leaves it */
enum { FILTER_HTMLX_COL_HEX, FILTER_HTMLX_COL_EMPTY /* "#" */, FILTER_HTMLX_COL_INVALID,
       FILTER_HTMLX_COL_TRANSPARENT };

struct filter_htmlx_color {
	uint8_t  kind;
	uint32_t rgb;
};

struct filter_htmlx_style {
	uint8_t                   tag;       /* FILTER_HTMLX_T_* (filter_eval_htmlx.c) */
	struct filter_htmlx_color fg, bg;
	double                    size;
};

/* the attributes the tests read, of the tag being read */
enum { FILTER_HTMLX_A_COLOR, FILTER_HTMLX_A_TEXT, FILTER_HTMLX_A_SIZE, FILTER_HTMLX_A_FACE,
       FILTER_HTMLX_A_STYLE, FILTER_HTMLX_A_WIDTH, FILTER_HTMLX_A_HEIGHT, FILTER_HTMLX_A_ACTION,
       FILTER_HTMLX_A_N };

/* one HTML part's results (HTML.pm's get_results) */
struct filter_htmlx_part {
	double   max_size;
	double   closed_extra_ratio, bad_tag_ratio, non_element_ratio, obfuscation_ratio;
	double   non_space_len, image_area;
	uint32_t len;
	uint32_t title_max;  /* characters of the longest title */
	uint8_t  defined;    /* bits: FILTER_HTMLX_D_* */
	uint8_t  flags;      /* bits: FILTER_HTMLX_F_* */
};

struct filter_eval_htmlx_state {
	/* the part being read */
	bool     in_part;
	uint32_t nstack;
	struct filter_htmlx_style stack[FILTER_HTMLX_STACK];
	double   basefont, max_size, min_size;
	uint32_t tags, elements, tags_seen, elements_seen, closed_extra, obfuscation;
	double   image_area, non_space_len;
	int32_t  in_script, in_style, in_title;
	uint8_t  flags;
	uint64_t name_hash[FILTER_HTMLX_NAMES];   /* 0: free */
	int32_t  name_inside[FILTER_HTMLX_NAMES];
	uint32_t nnames;
	/* text elements: between two pieces of markup */
	bool     text_active, text_nonws, have_elem, prev_word, cur_word;
	uint8_t  nbsp;                            /* bytes of "&nbsp;" matched */
	uint32_t title_run;                       /* characters without a newline in the title */
	uint32_t title_len, title_max;            /* characters of this title, the longest */
	uint8_t  decl;                            /* bytes of "doctype" matched after "<!" */
	/* the attributes of the tag being read */
	uint8_t  ast;                             /* attribute tokenizer state */
	uint8_t  anlen;
	char     aname[16];
	int8_t   acur;                            /* attribute whose value is read, or -1 */
	uint8_t  aquote;
	bool     aseen[FILTER_HTMLX_A_N];
	uint16_t alen[FILTER_HTMLX_A_N];
	char     aval[FILTER_HTMLX_A_N][FILTER_HTMLX_VAL];
	/* results of the parts done */
	uint32_t nparts;
	struct filter_htmlx_part parts[FILTER_HTMLX_PARTS];
};

/* At load: parses the arguments of rule ru (an eval of this block). 0 or -EINVAL/-ENOMEM. */
int  filter_eval_htmlx_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len);
/* At each message's start: resets the state. */
void filter_eval_htmlx_begin(struct filter_msg *fm);
/* At the message's end, before the metas: does rule ru hit? */
bool filter_eval_htmlx_test(struct filter_msg *fm, const struct filter_rule *ru);

/* Hooks of filter_eval_html_feed (filter_eval.c), inside text/html parts: */
/* a byte of text (outside markup) */
void filter_eval_htmlx_text(struct filter_msg *fm, uint8_t c);
/* "<" (then "/" if slash) that began no markup, then c unless it is '<' */
void filter_eval_htmlx_text_lt(struct filter_msg *fm, bool slash, uint8_t c);
/* "<!" or "<?": a comment or declaration begins */
void filter_eval_htmlx_markup(struct filter_msg *fm);
/* a byte of a declaration after "<!" (first: its first byte) */
void filter_eval_htmlx_decl(struct filter_msg *fm, uint8_t c, bool first);
/* a byte of a tag after its name, up to its '>' */
void filter_eval_htmlx_attr(struct filter_msg *fm, uint8_t c);
/* a tag ended: name (lower case, nlen bytes, maybe cut), end tag or not */
void filter_eval_htmlx_tag(struct filter_msg *fm, const char *name, size_t nlen, bool closing);
/* the current leaf ends; html: the next one is text/html */
void filter_eval_htmlx_part(struct filter_msg *fm, bool html, uint32_t len);
/* Hook of filter_msg.c: rendered body text (UTF-8) */
void filter_eval_htmlx_rendered(struct filter_msg *fm, const uint8_t *p, size_t n);

#endif
