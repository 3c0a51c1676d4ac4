// A message's text as DOM: plain text, with its http:// and https:// addresses made into links.
//
// Nothing a sender types ever becomes markup: every piece goes in as a text node or through
// `textContent`, and the only element made is an `<a>` whose `href` is an address the URL parser
// accepted as http or https. Anything else (`javascript:`, `data:`, tags) stays text.

/** A run of characters that starts like a web address; trailing punctuation is trimmed after. */
const ADDRESS = /\bhttps?:\/\/[^\s<>"]+/gi;
/** Punctuation that usually ends the sentence around an address rather than the address. */
const TRAILING = /[.,;:!?'*_~]+$/;

/** Replaces the children of `container` with `text`, its web addresses as links. */
export function renderText(container, text) {
  container.replaceChildren();
  let at = 0;
  for (const match of text.matchAll(ADDRESS)) {
    const address = trimAddress(match[0]);
    const href = webHref(address);
    if (href === null) continue;
    if (match.index > at) container.append(text.slice(at, match.index));
    container.append(link(href, address));
    at = match.index + address.length;
  }
  if (at < text.length) container.append(text.slice(at));
}

function link(href, label) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = label;
  // A new tab that cannot reach back into this page, tell the site where it came from, or lend
  // the link any ranking.
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  return a;
}

/** Drops sentence punctuation, and a closing bracket the address did not open, from its end. */
function trimAddress(address) {
  let s = address;
  for (;;) {
    const before = s;
    s = s.replace(TRAILING, "");
    for (const [open, close] of [
      ["(", ")"],
      ["[", "]"],
      ["{", "}"],
    ]) {
      if (s.endsWith(close) && s.split(open).length < s.split(close).length) s = s.slice(0, -1);
    }
    if (s === before) return s;
  }
}

/** The address as the parser sees it, if it is an http(s) address with a host; else null. */
function webHref(address) {
  let url;
  try {
    url = new URL(address);
  } catch {
    return null;
  }
  if ((url.protocol !== "http:" && url.protocol !== "https:") || url.hostname === "") return null;
  return url.href;
}
