// Mentions in message text, of the viewer (and, more quietly, of the room's present members): `@username` (accounts) and `@` + the display name, in
// any case, not followed by more of a name, the same rule the server counts by
// (docs/protocol.md, `rooms`: `mentions`), so what is highlighted here is what the lobby counted.
//
// Highlighting only splits the text nodes `renderText` (web/text.js) made and wraps the matched
// part in a `<mark>` whose content is a text node: nothing a sender types becomes markup.

/** Characters that continue a name: `@dan` is not a mention of `dana`. */
const NAME_CHAR = /[\p{L}\p{N}_.-]/u;

/**
 * The names that mention the viewer, lowercased and longest first (so `@Dana R.` wins over a
 * username `dana`): the display name, and the username of an account.
 */
export function mentionNeedles(user, username) {
  const needles = new Set();
  if (user && typeof user.name === "string" && user.name.trim() !== "") needles.add(user.name.toLowerCase());
  if (typeof username === "string" && username !== "") needles.add(username.toLowerCase());
  return [...needles].sort((a, b) => b.length - a.length);
}

/** Where `text` mentions one of `needles`: `[start, end)` ranges, `start` on the `@`. */
export function mentionRanges(text, needles) {
  const ranges = [];
  if (needles.length === 0) return ranges;
  let at = text.indexOf("@");
  while (at >= 0) {
    let end = -1;
    for (const needle of needles) {
      const candidate = text.slice(at + 1, at + 1 + needle.length);
      if (candidate.toLowerCase() !== needle) continue;
      const next = text.slice(at + 1 + needle.length).match(/^./u)?.[0];
      if (next !== undefined && NAME_CHAR.test(next)) continue;
      end = at + 1 + needle.length;
      break;
    }
    if (end > 0) {
      ranges.push([at, end]);
      at = text.indexOf("@", end);
    } else {
      at = text.indexOf("@", at + 1);
    }
  }
  return ranges;
}

/** Whether `text` mentions the viewer. */
export function mentions(text, needles) {
  return typeof text === "string" && mentionRanges(text, needles).length > 0;
}

/**
 * The display names of the room's other present members, lowercased and longest first: a
 * mention of one of them is shown as a mention too (`mention-other`), more quietly than one of
 * the viewer.
 */
export function memberNeedles(members, viewer) {
  const needles = new Set();
  for (const user of members) {
    if (user && user.id !== viewer?.id && typeof user.name === "string" && user.name.trim() !== "") {
      needles.add(user.name.toLowerCase());
    }
  }
  return [...needles].sort((a, b) => b.length - a.length);
}

/**
 * Wraps each mention of `needles` inside `container` (already filled by `renderText`) in
 * `<mark class="...">` (`mention`, the viewer, by default). Links and marks already made are
 * left alone: an address is not a mention, and the viewer's own mentions are marked first.
 * Returns whether anything was marked.
 */
export function highlightMentions(container, needles, className = "mention") {
  if (needles.length === 0) return false;
  let found = false;
  for (const node of [...container.childNodes]) {
    if (node.nodeType !== Node.TEXT_NODE) continue;
    const text = node.data;
    const ranges = mentionRanges(text, needles);
    if (ranges.length === 0) continue;
    found = true;
    const parts = [];
    let at = 0;
    for (const [start, end] of ranges) {
      if (start > at) parts.push(document.createTextNode(text.slice(at, start)));
      const mark = document.createElement("mark");
      mark.className = className;
      mark.textContent = text.slice(start, end);
      parts.push(mark);
      at = end;
    }
    if (at < text.length) parts.push(document.createTextNode(text.slice(at)));
    node.replaceWith(...parts);
  }
  return found;
}
