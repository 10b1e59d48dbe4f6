// Text shown to a person as it is: characters that would hide, reorder or break a line, written as escapes (mirrors app/visible_text.py).

// C0 and C1 controls, DEL, the line and paragraph separators, bidi overrides, embeddings, isolates
// and marks; characters that show as nothing between two visible ones (the soft hyphen, the
// combining grapheme joiner, the Hangul and Khmer fillers and vowels that draw nothing, the
// Mongolian vowel separator, zero-width spaces and joiners, the word joiner, the invisible
// operators, the byte order mark, the tags); and lone surrogates (the `u` flag makes the class
// match only a surrogate that is not half of a pair).
const INVISIBLE =
  "\\x00-\\x1f\\x7f-\\x9f\\xad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180e\\u200b-\\u200f" +
  "\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\u3164\\ufeff\\uffa0\\u2028\\u2029" +
  "\\u{e0000}-\\u{e007f}\\ud800-\\udfff";
const ESCAPED = new RegExp(`[${INVISIBLE}]`, "gu");
const ESCAPED_OR_BACKSLASH = new RegExp(`[${INVISIBLE}\\\\]`, "gu");
const NAMED = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\" };
const ZWJ = "\u200d";
// A pictograph, with the variation selector or skin tone that may follow it, just before a ZWJ.
const PICTOGRAPH_BEFORE = /\p{Extended_Pictographic}[\u{fe0f}\p{Emoji_Modifier}]?$/u;
const PICTOGRAPH_AFTER = /^\p{Extended_Pictographic}/u;

function escape(char) {
  if (Object.hasOwn(NAMED, char)) {
    return NAMED[char];
  }
  const code = char.codePointAt(0);
  const hex = code.toString(16);
  if (code < 0x100) {
    return `\\x${hex.padStart(2, "0")}`;
  }
  return code < 0x10000 ? `\\u${hex.padStart(4, "0")}` : `\\U${hex.padStart(8, "0")}`;
}

/** `text` on one line, every invisible character and every backslash written as an escape. */
export function escapeText(text) {
  return text.replace(ESCAPED_OR_BACKSLASH, escape);
}

/** `text` with its invisible characters written as escapes and its backslashes as they are. */
export function escapeInvisible(text) {
  return text.replace(ESCAPED, escape);
}

/** Whether the ZWJ at `index` of `text` joins two pictographs into one emoji (👨‍👩‍👧). */
function joinsPictographs(text, index) {
  return PICTOGRAPH_BEFORE.test(text.slice(Math.max(0, index - 4), index)) && PICTOGRAPH_AFTER.test(text.slice(index + 1, index + 3));
}

/**
 * `text` as the page shows it: a list of `{text, escape}` parts, where each invisible character is
 * an escape of its own (so that the page can make it stand out), backslashes stay as they are (only
 * escapes are set apart, so nothing typed can pass for one), and a ZWJ between two pictographs,
 * which draws one emoji of them, is left alone.
 */
export function visibleParts(text) {
  const parts = [];
  let from = 0;
  for (const match of text.matchAll(ESCAPED)) {
    if (match[0] === ZWJ && joinsPictographs(text, match.index)) {
      continue;
    }
    if (match.index > from) {
      parts.push({ text: text.slice(from, match.index), escape: false });
    }
    parts.push({ text: escape(match[0]), escape: true });
    from = match.index + match[0].length;
  }
  if (from < text.length || parts.length === 0) {
    parts.push({ text: text.slice(from), escape: false });
  }
  return parts;
}

/** `text` on one line as the page shows it (visibleParts joined). */
export function visibleText(text) {
  return visibleParts(text)
    .map((part) => part.text)
    .join("");
}
