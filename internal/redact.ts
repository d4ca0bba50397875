// Hides anything shaped like a capability token in text meant for people, e.g.
// a CLI error echoing an argument the user typed in the wrong place.

// A JWS header is base64url of JSON, so it starts with "eyJ" ('{"'): this also
// catches a header alone or a token cut short. The second form catches a whole
// HS256 token (43-character signature) whatever its header.
const TOKEN_RE =
  /eyJ[A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]*){0,2}|[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])/g;

/** Replaces every token-shaped part of `text` with `<token>`. */
export function redactTokens(text: string): string {
  return text.replace(TOKEN_RE, "<token>");
}
