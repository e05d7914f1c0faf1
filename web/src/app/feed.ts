// The feed: write a post, read the timeline (own posts and those of people followed) page by
// page, new posts arriving live, likes and comments with live counters.
import type { CorralClient, Post } from "@corral/client";
import { h, replace, toast } from "../lib/dom.ts";
import { inlineForm } from "../lib/forms.ts";
import { when } from "../lib/format.ts";
import { api, explain, nameTag } from "../lib/session.ts";

interface Comment {
  comment_id: number;
  author: number;
  text: string;
  created_at: number;
}

interface TimelinePage {
  posts: Post[];
  next_before: number | null;
}

export function feedTab(client: CorralClient, me: number) {
  return (panel: HTMLElement) => {
    const list = h("ol", { class: "list posts", id: "posts" });
    const more = h("button", { type: "button", class: "secondary", id: "more-posts" }, "Older posts");
    const cards = new Map<number, { likes: HTMLElement; comments: HTMLElement; thread: HTMLOListElement | null; count: { likes: number; comments: number } }>();
    let cursor: number | null = null;

    const card = (p: Post) => {
      const likes = h("span", { class: "count" }, String(p.likes));
      const comments = h("span", { class: "count" }, String(p.comments));
      const state = { likes: p.likes, comments: p.comments };
      const entry = { likes, comments, thread: null as HTMLOListElement | null, count: state };
      cards.set(p.post_id, entry);
      let liked = false;
      const likeBtn = h(
        "button",
        {
          type: "button",
          class: "secondary small",
          attrs: { "aria-pressed": "false" },
          on: {
            click: async () => {
              try {
                if (liked) await api.delete(`/api/v1/posts/${p.post_id}/like`);
                else await api.post(`/api/v1/posts/${p.post_id}/like`, {});
                liked = !liked;
                likeBtn.setAttribute("aria-pressed", String(liked));
                entry.count.likes += liked ? 1 : -1;
                likes.textContent = String(entry.count.likes);
              } catch (err) {
                toast(explain(err), "error");
              }
            },
          },
        },
        "Like ",
        likes,
      );
      const threadBox = h("div", { class: "thread" });
      const commentsBtn = h(
        "button",
        {
          type: "button",
          class: "secondary small",
          on: {
            click: async () => {
              if (entry.thread) {
                entry.thread = null;
                replace(threadBox);
                return;
              }
              const thread = h("ol", { class: "comments" });
              entry.thread = thread;
              const text = h("input", { name: "comment", maxLength: 2000, placeholder: "Write a comment", required: true });
              replace(
                threadBox,
                thread,
                inlineForm("Comment", [text], async () => {
                  await api.post(`/api/v1/posts/${p.post_id}/comments`, { text: text.value });
                  text.value = "";
                  await loadComments(p.post_id);
                }),
              );
              await loadComments(p.post_id);
            },
          },
        },
        "Comments ",
        comments,
      );
      return h(
        "li",
        { class: "post card", attrs: { "data-post": String(p.post_id) } },
        h("div", { class: "post-head" }, nameTag(p.author), h("time", { class: "muted" }, when(p.created_at))),
        h("p", { class: "text" }, p.text),
        h("div", { class: "actions" }, likeBtn, commentsBtn),
        threadBox,
      );
    };

    const loadComments = async (post: number) => {
      const entry = cards.get(post);
      if (!entry?.thread) return;
      try {
        const page = await api.get<{ comments: Comment[] }>(`/api/v1/posts/${post}/comments?limit=50`);
        replace(entry.thread, ...page.comments.map((c) => h("li", null, nameTag(c.author), ": ", h("span", { class: "text" }, c.text))));
        entry.count.comments = Math.max(entry.count.comments, page.comments.length);
        entry.comments.textContent = String(entry.count.comments);
      } catch (err) {
        toast(explain(err), "error");
      }
    };

    const loadPage = async () => {
      more.disabled = true;
      try {
        const page = await api.get<TimelinePage>(`/api/v1/timeline?limit=20${cursor ? `&before=${cursor}` : ""}`);
        for (const p of page.posts) if (!cards.has(p.post_id)) list.appendChild(card(p));
        cursor = page.next_before;
        more.hidden = cursor === null;
      } catch (err) {
        toast(explain(err), "error");
      } finally {
        more.disabled = false;
      }
    };
    more.addEventListener("click", () => void loadPage());

    const text = h("textarea", { name: "post", id: "post-text", maxLength: 4000, rows: 3, placeholder: "What's happening on the farm?" });
    const error = h("p", { class: "form-error", attrs: { role: "alert" } });
    const compose = h(
      "form",
      {
        class: "card",
        on: {
          submit: async (ev) => {
            ev.preventDefault();
            error.textContent = "";
            if (!text.value.trim()) {
              error.textContent = "Write something first.";
              return;
            }
            try {
              const { post_id } = await client.post(text.value);
              text.value = "";
              // The author's own sockets are not followers: show the post from the store.
              const post = await api.get<Post>(`/api/v1/posts/${post_id}`);
              if (!cards.has(post_id)) list.insertBefore(card(post), list.firstChild);
            } catch (err) {
              error.textContent = explain(err);
            }
          },
        },
      },
      h("label", { class: "field" }, h("span", { class: "field-label" }, "New post"), text),
      error,
      h("button", { type: "submit", id: "publish" }, "Publish"),
    );

    const offs = [
      client.on("feed.post", (push) => {
        if (!cards.has(push.post.post_id)) list.insertBefore(card(push.post), list.firstChild);
      }),
      client.on("feed.liked", (push) => {
        const entry = cards.get(push.post);
        // The caller's own like was counted when the button was pressed.
        if (entry && push.by !== me) {
          entry.count.likes += 1;
          entry.likes.textContent = String(entry.count.likes);
        }
      }),
      client.on("feed.commented", (push) => {
        const entry = cards.get(push.post);
        if (entry && push.by !== me) {
          entry.count.comments += 1;
          entry.comments.textContent = String(entry.count.comments);
          void loadComments(push.post);
        }
      }),
    ];
    replace(panel, compose, h("h2", null, "Your feed"), list, more);
    void loadPage();
    return () => offs.forEach((off) => off());
  };
}
