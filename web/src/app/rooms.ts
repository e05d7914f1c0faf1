// Rooms and direct messages: the public rooms and the user's own (private rooms and DMs),
// creating a room, starting a DM by username, and one open room with its live messages,
// older history on demand and a send box.
import type { ChatMessage, CorralClient, Room } from "@corral/client";
import { field, h, replace, toast } from "../lib/dom.ts";
import { inlineForm } from "../lib/forms.ts";
import { clockTime } from "../lib/format.ts";
import { api, explain, nameTag } from "../lib/session.ts";

interface RoomRow {
  room_id: number;
  name: string;
  owner_id: number;
  private: boolean;
  dm_with?: number;
  last_seq: number;
}

interface RoomPage {
  rooms: RoomRow[];
  next_before: number | null;
}

const HISTORY_PAGE = 30;

/** For the owner of a private room: let someone in by username. */
function addMemberForm(room: number): HTMLFormElement {
  const who = h("input", { name: "member", placeholder: "username", required: true, attrs: { "aria-label": "Username to add" } });
  return inlineForm(
    "Add to room",
    [who],
    async () => {
      const user = await api.get<{ user_id: number }>(`/api/v1/usernames/${encodeURIComponent(who.value.trim())}`);
      await api.post(`/api/v1/rooms/${room}/members`, { user_id: user.user_id });
      toast(`${who.value.trim()} can now join this room.`);
      who.value = "";
    },
    "secondary small",
  );
}

export function roomsTab(client: CorralClient, me: number) {
  return (panel: HTMLElement) => {
    const list = h("ul", { class: "list rooms", id: "room-list" });
    const view = h("div", { class: "room-view", id: "room-view" }, h("p", { class: "muted" }, "Pick a room to start chatting."));
    let current: Room | null = null;

    const loadRooms = async () => {
      try {
        const [pub, mine] = await Promise.all([
          api.get<RoomPage>("/api/v1/rooms?scope=public&limit=50"),
          api.get<RoomPage>("/api/v1/rooms?scope=mine&limit=50"),
        ]);
        replace(list);
        const rows = [...mine.rooms, ...pub.rooms];
        if (!rows.length) list.appendChild(h("li", { class: "muted" }, "No rooms yet: create the first one."));
        for (const r of rows) {
          const label = r.dm_with !== undefined ? h("span", null, "DM with ", nameTag(r.dm_with)) : h("span", null, r.name);
          list.appendChild(
            h(
              "li",
              null,
              h(
                "button",
                { type: "button", class: "link", attrs: { "data-room": String(r.room_id) }, on: { click: () => void openRoom(r, label.cloneNode(true) as HTMLElement) } },
                label,
                r.private && r.dm_with === undefined ? h("span", { class: "badge" }, "private") : null,
              ),
            ),
          );
        }
      } catch (err) {
        toast(explain(err), "error");
      }
    };

    const openRoom = async (room: RoomRow, title: HTMLElement) => {
      if (current) {
        const leaving = current;
        current = null;
        void leaving.leave().catch(() => undefined);
      }
      const messages = h("ol", { class: "messages", id: "messages", attrs: { "aria-live": "polite" } });
      const older = h("button", { type: "button", class: "secondary small", id: "older" }, "Load older messages");
      const text = h("input", { name: "text", id: "message-text", maxLength: 4000, autocomplete: "off", placeholder: "Write a message" });
      const send = h("button", { type: "submit", id: "send" }, "Send");
      const error = h("p", { class: "form-error", attrs: { role: "alert" } });
      const shown = new Set<number>();
      let oldest = Number.MAX_SAFE_INTEGER;
      const row = (m: ChatMessage) =>
        h(
          "li",
          { class: m.from === me ? "msg mine" : "msg", attrs: { "data-seq": String(m.seq) } },
          h("span", { class: "from" }, nameTag(m.from)),
          h("span", { class: "text" }, m.text),
          h("time", { class: "ts" }, clockTime(m.ts)),
        );
      const add = (m: ChatMessage, atTop = false) => {
        if (shown.has(m.seq)) return;
        shown.add(m.seq);
        oldest = Math.min(oldest, m.seq);
        if (atTop) messages.insertBefore(row(m), messages.firstChild);
        else {
          messages.appendChild(row(m));
          messages.scrollTop = messages.scrollHeight;
        }
      };
      replace(
        view,
        h("h2", { id: "room-title" }, title),
        room.private && room.dm_with === undefined && room.owner_id === me ? addMemberForm(room.room_id) : null,
        older,
        messages,
        h(
          "form",
          {
            class: "send-row",
            on: {
              submit: async (ev) => {
                ev.preventDefault();
                const value = text.value.trim();
                if (!value || !current) return;
                send.disabled = true;
                error.textContent = "";
                // Cleared at once, so what is typed while this one is sent is kept.
                text.value = "";
                try {
                  await current.send(value);
                } catch (err) {
                  if (!text.value) text.value = value;
                  error.textContent = explain(err);
                } finally {
                  send.disabled = false;
                  text.focus();
                }
              },
            },
          },
          text,
          send,
        ),
        error,
      );
      try {
        const handle = await client.joinRoom(room.room_id, { onMessage: (m) => add(m), initialHistory: HISTORY_PAGE });
        current = handle;
        for (const m of handle.messages) add(m);
        older.disabled = oldest <= 1;
        older.addEventListener("click", async () => {
          older.disabled = true;
          try {
            const page = await handle.history({ beforeSeq: oldest, limit: HISTORY_PAGE });
            for (const m of [...page].sort((a, b) => b.seq - a.seq)) add(m, true);
            older.disabled = page.length < HISTORY_PAGE || oldest <= 1;
          } catch (err) {
            error.textContent = explain(err);
            older.disabled = false;
          }
        });
        text.focus();
      } catch (err) {
        error.textContent = explain(err);
      }
    };

    const roomName = h("input", { name: "room-name", id: "new-room-name", maxLength: 100, required: true });
    const isPrivate = h("input", { type: "checkbox", name: "private" });
    const nameField = field("New room name", roomName);
    const create = h(
      "form",
      {
        class: "card compact",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            nameField.error.textContent = "";
            const name = roomName.value.trim();
            if (!name) {
              nameField.error.textContent = "Give the room a name.";
              return;
            }
            try {
              const { room_id } = await api.post<{ room_id: number }>("/api/v1/rooms", { name, private: isPrivate.checked });
              roomName.value = "";
              await loadRooms();
              await openRoom({ room_id, name, owner_id: me, private: isPrivate.checked, last_seq: 0 }, h("span", null, name));
            } catch (err) {
              nameField.error.textContent = explain(err);
            }
          },
        },
      },
      nameField.row,
      h("label", { class: "check" }, isPrivate, " Private (only people you add)"),
      h("button", { type: "submit", id: "create-room" }, "Create room"),
    );

    const dmTo = h("input", { name: "dm-to", id: "dm-to", required: true, placeholder: "username" });
    const dmText = h("input", { name: "dm-text", id: "dm-text", required: true, placeholder: "Say hello" });
    const dmField = field("Message someone", dmTo);
    const dm = h(
      "form",
      {
        class: "card compact",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            dmField.error.textContent = "";
            try {
              const user = await api.get<{ user_id: number }>(`/api/v1/usernames/${encodeURIComponent(dmTo.value.trim())}`);
              if (user.user_id === me) throw new Error("That is you: pick someone else.");
              const sent = await client.sendDm(user.user_id, dmText.value);
              dmText.value = "";
              await loadRooms();
              await openRoom({ room_id: sent.room, name: "", owner_id: me, private: true, dm_with: user.user_id, last_seq: sent.seq }, h("span", null, "DM with ", nameTag(user.user_id)));
            } catch (err) {
              dmField.error.textContent = explain(err);
            }
          },
        },
      },
      dmField.row,
      dmText,
      h("button", { type: "submit" }, "Send message"),
    );

    replace(panel, h("div", { class: "split" }, h("aside", null, h("h2", null, "Rooms"), list, create, dm), view));
    void loadRooms();
    return () => {
      if (current) void current.leave().catch(() => undefined);
    };
  };
}
