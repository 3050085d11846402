/**
 * Values quoted in messages the way the server quotes them (Python's `repr` of a string), so a
 * message computed here reads exactly like the server's refusal of the same value.
 */

// Characters Python's str.isprintable() rejects (other than the space, which it accepts).
const NOT_PRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Cs}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;

function escape(char: string): string {
  const code = char.codePointAt(0) ?? 0;
  if (code <= 0xff) {
    return `\\x${code.toString(16).padStart(2, '0')}`;
  }
  if (code <= 0xffff) {
    return `\\u${code.toString(16).padStart(4, '0')}`;
  }
  return `\\U${code.toString(16).padStart(8, '0')}`;
}

/** Python's `repr(text)`: 'text', or "it's" when only single quotes occur inside. */
export function pyRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let body = '';
  for (const char of text) {
    if (char === '\\') {
      body += '\\\\';
    } else if (char === quote) {
      body += `\\${quote}`;
    } else if (char === '\n') {
      body += '\\n';
    } else if (char === '\r') {
      body += '\\r';
    } else if (char === '\t') {
      body += '\\t';
    } else if (NOT_PRINTABLE.test(char)) {
      body += escape(char);
    } else {
      body += char;
    }
  }
  return `${quote}${body}${quote}`;
}

/** `validation.py`'s `_shown`: the repr, cut to 60 characters with "...". */
export function shown(text: string, length = 60): string {
  const quoted = pyRepr(text);
  return quoted.length <= length ? quoted : `${quoted.slice(0, length - 3)}...`;
}
