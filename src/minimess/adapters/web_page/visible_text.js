// Text shown to a person as it is: characters that would hide, reorder or break a line, written as escapes (mirrors app/visible_text.py).

// C0 and C1 controls, DEL, the line and paragraph separators, bidi overrides, embeddings, isolates
// and marks, zero-width spaces and joiners, the word joiner, the byte order mark, and lone
// surrogates (the `u` flag makes the class match only a surrogate that is not half of a pair).
const INVISIBLE = "\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060\\u2066-\\u2069\\ufeff\\u2028\\u2029\\ud800-\\udfff";
const ESCAPED = new RegExp(`[${INVISIBLE}]`, "gu");
const ESCAPED_OR_BACKSLASH = new RegExp(`[${INVISIBLE}\\\\]`, "gu");
const NAMED = { "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\" };

function escape(char) {
  if (Object.hasOwn(NAMED, char)) {
    return NAMED[char];
  }
  const code = char.charCodeAt(0);
  const hex = code.toString(16);
  return code < 0x100 ? `\\x${hex.padStart(2, "0")}` : `\\u${hex.padStart(4, "0")}`;
}

/** `text` on one line, every invisible character and every backslash written as an escape. */
export function escapeText(text) {
  return text.replace(ESCAPED_OR_BACKSLASH, escape);
}

/** `text` with its invisible characters written as escapes and its backslashes as they are. */
export function escapeInvisible(text) {
  return text.replace(ESCAPED, escape);
}
