// Reactions on a message: the chips under it (one toggle button per emoji) and the small picker
// the React action opens. The state is the protocol's: `[{emoji, count, users: [{id, name, guest}]}]`
// in the order each emoji was first given (docs/protocol.md, the message fields and `reaction`).
// `users` lists at most the first ten, so `count` may be higher than `users.length`.

/** The picker's emoji, with the names a screen reader says for them. */
export const COMMON_EMOJI = [
  ["👍", "thumbs up"],
  ["❤️", "heart"],
  ["😂", "laughing"],
  ["🎉", "party"],
  ["😮", "surprised"],
  ["😢", "sad"],
  ["🙏", "thank you"],
  ["👀", "eyes"],
];

const NAMES_SHOWN = 10;

/** Well-formed reactions from a message of `joined` or `history` (anything else is dropped). */
export function reactionsFrom(list) {
  if (!Array.isArray(list)) return [];
  return list
    .filter((r) => r && typeof r.emoji === "string" && Number.isInteger(r.count) && r.count > 0)
    .map((r) => ({
      emoji: r.emoji,
      count: r.count,
      users: (Array.isArray(r.users) ? r.users : []).filter((u) => u && typeof u.id === "string"),
    }));
}

/** Applies a `reaction` event to `reactions` in place: adds or takes away its user. */
export function applyReaction(reactions, event) {
  const index = reactions.findIndex((r) => r.emoji === event.emoji);
  if (event.added === true) {
    if (index < 0) {
      reactions.push({ emoji: event.emoji, count: 1, users: [event.user] });
      return;
    }
    const reaction = reactions[index];
    // The server never counts one user twice; a listed user means we have seen this already.
    if (reaction.users.some((u) => u.id === event.user.id)) return;
    reaction.count += 1;
    reaction.users.push(event.user);
  } else if (index >= 0) {
    const reaction = reactions[index];
    reaction.count -= 1;
    reaction.users = reaction.users.filter((u) => u.id !== event.user.id);
    if (reaction.count <= 0) reactions.splice(index, 1);
  }
}

/** Has user `id` given `emoji`? (As far as the listed users tell.) */
export function hasReacted(reactions, emoji, id) {
  return reactions.some((r) => r.emoji === emoji && r.users.some((u) => u.id === id));
}

/** "alice, bob and 3 others" */
function who(reaction) {
  const names = reaction.users.slice(0, NAMES_SHOWN).map((u) => u.name);
  const others = reaction.count - names.length;
  if (others > 0) names.push(`${others} ${others === 1 ? "other" : "others"}`);
  if (names.length <= 1) return names.join("");
  return `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

/**
 * Shows `reactions` as chips at the end of `bubble` (before `before`, when given). Chips are
 * updated in place, keyed by emoji, so the one a keyboard user just pressed keeps the focus.
 * `onToggle(emoji)` runs when a chip is pressed.
 */
export function renderReactions(bubble, reactions, myId, onToggle, before = null) {
  let row = bubble.querySelector(".reactions");
  if (reactions.length === 0) {
    row?.remove();
    return;
  }
  if (!row) {
    row = document.createElement("div");
    row.className = "reactions";
    row.setAttribute("role", "group");
    row.setAttribute("aria-label", "Reactions");
    bubble.insertBefore(row, before);
  }
  const chips = new Map([...row.children].map((chip) => [chip.dataset.emoji, chip]));
  let previous = null;
  for (const reaction of reactions) {
    let chip = chips.get(reaction.emoji);
    chips.delete(reaction.emoji);
    if (!chip) {
      chip = document.createElement("button");
      chip.type = "button";
      chip.className = "reaction-chip";
      chip.dataset.emoji = reaction.emoji;
      const emoji = document.createElement("span");
      emoji.className = "reaction-emoji";
      emoji.textContent = reaction.emoji;
      const count = document.createElement("span");
      count.className = "reaction-count";
      chip.append(emoji, count);
      chip.addEventListener("click", () => onToggle(chip.dataset.emoji));
    }
    const mine = reaction.users.some((u) => u.id === myId);
    chip.setAttribute("aria-pressed", String(mine));
    chip.querySelector(".reaction-count").textContent = String(reaction.count);
    const people = who(reaction);
    chip.title = `${reaction.emoji} ${people}`;
    chip.setAttribute("aria-label", `${reaction.emoji} ${reaction.count}: ${people}`);
    // Keep the protocol's order without moving chips that are already in place.
    const wanted = previous ? previous.nextElementSibling : row.firstElementChild;
    if (wanted !== chip) row.insertBefore(chip, wanted);
    previous = chip;
  }
  for (const chip of chips.values()) chip.remove();
}

/**
 * Opens the emoji picker at the end of `bubble`, for the React button `opener`. Arrow keys move
 * between the emoji, Escape closes it and gives the focus back to `opener`; so does a pick,
 * after `onPick(emoji)`. `isMine(emoji)` marks the ones the user gave already (picking one of
 * those takes it back). Returns the picker element.
 */
export function openPicker(bubble, opener, { isMine, onPick }) {
  closePicker(bubble, false);
  const picker = document.createElement("div");
  picker.className = "reaction-picker";
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Pick a reaction");
  for (const [emoji, name] of COMMON_EMOJI) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "reaction-option";
    button.dataset.emoji = emoji;
    button.textContent = emoji;
    const mine = isMine(emoji);
    button.setAttribute("aria-pressed", String(mine));
    button.setAttribute("aria-label", mine ? `${name} (yours; press to take back)` : name);
    button.title = name;
    button.addEventListener("click", () => {
      closePicker(bubble, true);
      onPick(emoji);
    });
    picker.append(button);
  }
  picker.addEventListener("keydown", (event) => {
    const options = [...picker.querySelectorAll("button")];
    const at = options.indexOf(document.activeElement);
    let next = null;
    if (event.key === "ArrowRight" || event.key === "ArrowDown") next = options[(at + 1) % options.length];
    else if (event.key === "ArrowLeft" || event.key === "ArrowUp") next = options[(at - 1 + options.length) % options.length];
    else if (event.key === "Home") next = options[0];
    else if (event.key === "End") next = options[options.length - 1];
    else if (event.key === "Escape") {
      event.preventDefault();
      event.stopPropagation();
      closePicker(bubble, true);
      return;
    }
    if (next) {
      event.preventDefault();
      next.focus();
    }
  });
  // Leaving the picker (a click or Tab elsewhere) closes it, without moving the focus.
  picker.addEventListener("focusout", (event) => {
    if (!picker.contains(event.relatedTarget) && event.relatedTarget !== opener) closePicker(bubble, false);
  });
  picker.opener = opener;
  opener.setAttribute("aria-expanded", "true");
  bubble.append(picker);
  picker.querySelector("button").focus();
  return picker;
}

/** Closes the picker of `bubble`, if open; `refocus` gives the focus back to its React button. */
export function closePicker(bubble, refocus) {
  const picker = bubble.querySelector(".reaction-picker");
  // Removing the focused picker fires its own focusout, which comes back here: once is enough.
  if (!picker || picker.closing) return;
  picker.closing = true;
  picker.opener?.setAttribute("aria-expanded", "false");
  picker.remove();
  if (refocus && picker.opener?.isConnected) picker.opener.focus();
}
