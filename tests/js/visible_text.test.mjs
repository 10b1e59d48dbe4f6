// visible_text.js writes what tests/unit/test_visible_text.py expects of app/visible_text.py.

import assert from "node:assert/strict";
import { test } from "node:test";

import {
  escapeInvisible,
  escapeText,
  visibleParts,
  visibleText,
} from "../../src/minimess/adapters/web_page/visible_text.js";

const range = (from, to) => Array.from({ length: to - from }, (_, i) => String.fromCodePoint(from + i));
const INVISIBLE = [
  ...range(0x00, 0x20),
  ...range(0x7f, 0xa0),
  "\u00ad",
  "\u034f",
  "\u061c",
  "\u115f",
  "\u1160",
  "\u17b4",
  "\u17b5",
  "\u180e",
  ...range(0x200b, 0x2010),
  ...range(0x202a, 0x202f),
  ...range(0x2060, 0x2065),
  ...range(0x2066, 0x206a),
  "\u3164",
  "\ufeff",
  "\uffa0",
  "\u2028",
  "\u2029",
  ...range(0xe0000, 0xe0080),
];

const CASES = [
  ["two\nlines", "two\\nlines"],
  ["crlf\r\n", "crlf\\r\\n"],
  ["tab\there", "tab\\there"],
  ["\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"],
  ["nul\x00bell\x07", "nul\\x00bell\\x07"],
  ["del\x7f", "del\\x7f"],
  ["c1\x85next\x9b", "c1\\x85next\\x9b"],
  ["line\u2028paragraph\u2029", "line\\u2028paragraph\\u2029"],
  ["\u202egnp.exe", "\\u202egnp.exe"],
  ["iso\u2066late\u2069 mark\u200e\u200f\u061c", "iso\\u2066late\\u2069 mark\\u200e\\u200f\\u061c"],
  ["zero\u200bwidth\u200c\u200d\u2060\ufeff", "zero\\u200bwidth\\u200c\\u200d\\u2060\\ufeff"],
  [
    "soft\u00adhyphen, filler\u3164\uffa0\u115f, mongolian\u180e",
    "soft\\xadhyphen, filler\\u3164\\uffa0\\u115f, mongolian\\u180e",
  ],
  ["tags\u{e0001}\u{e0041}\u{e007f}", "tags\\U000e0001\\U000e0041\\U000e007f"],
  ["back\\slash", "back\\\\slash"],
  ["not an escape: \\n", "not an escape: \\\\n"],
  ...["What's up all", "héllo wörld", "emoji 🙂", "\u00a0nbsp", "עברית", ""].map((text) => [text, text]),
];

test("invisible characters and backslashes become escapes, the rest stays", () => {
  for (const [text, written] of CASES) {
    assert.equal(escapeText(text), written, JSON.stringify(text));
  }
});

test("every invisible character is escaped alone, in lower-case hex", () => {
  for (const char of INVISIBLE) {
    const written = escapeText(char);
    assert.match(written, /^\\(?:[nrt]|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})$/, JSON.stringify(char));
  }
});

test("a lone surrogate is escaped, a pair (an emoji) is not", () => {
  assert.equal(escapeText("a\ud800b\udfff"), "a\\ud800b\\udfff");
  assert.equal(escapeText("\ud83d\ude42"), "🙂");
});

test("escapeInvisible leaves backslashes for text that already holds escapes", () => {
  assert.equal(escapeInvisible("'a\\nb' \x1b[2J\u202e"), "'a\\nb' \\x1b[2J\\u202e");
});

test("the page shows backslashes as they are and sets each escape apart", () => {
  const typed = "back\\slash \\u202e typed";
  assert.deepEqual(visibleParts(typed), [{ text: typed, escape: false }]);
  assert.deepEqual(visibleParts("a\u202eb\n"), [
    { text: "a", escape: false },
    { text: "\\u202e", escape: true },
    { text: "b", escape: false },
    { text: "\\n", escape: true },
  ]);
  assert.deepEqual(visibleParts(""), [{ text: "", escape: false }]);
  assert.equal(visibleText("tag\u{e0041}"), "tag\\U000e0041");
});

test("the page leaves a ZWJ between two pictographs alone, and escapes any other", () => {
  for (const emoji of ["👨\u200d👩\u200d👧", "👩🏽\u200d💻", "🏳\ufe0f\u200d🌈", "❤\ufe0f\u200d🔥"]) {
    assert.equal(visibleText(emoji), emoji, JSON.stringify(emoji));
  }
  assert.equal(visibleText("a\u200db"), "a\\u200db");
  assert.equal(visibleText("👨\u200d"), "👨\\u200d");
  assert.equal(visibleText("\u200d👨"), "\\u200d👨");
  assert.equal(visibleText("👨\u200d\u200d👩"), "👨\\u200d\\u200d👩");
  // The terminal's escaping, which the page mirrors, escapes every one.
  assert.equal(escapeText("👨\u200d👩"), "👨\\u200d👩");
});
