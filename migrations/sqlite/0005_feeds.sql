-- Feeds: the follow graph, posts with like/comment counters, likes, comments, and animal
-- follows (claimants follow the animals they adopted).
CREATE TABLE follows (
    follower_id INTEGER NOT NULL REFERENCES users (id),
    followee_id INTEGER NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_by_followee ON follows (followee_id, follower_id);

CREATE TABLE posts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    author_id  INTEGER NOT NULL REFERENCES users (id),
    text       TEXT    NOT NULL,
    media      TEXT    NOT NULL DEFAULT '[]',
    animal_id  INTEGER,
    likes      INTEGER NOT NULL DEFAULT 0,
    comments   INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    deleted_at INTEGER
);
CREATE INDEX posts_by_author ON posts (author_id, id);
CREATE INDEX posts_by_animal ON posts (animal_id, id) WHERE animal_id IS NOT NULL;

CREATE TABLE post_likes (
    post_id    INTEGER NOT NULL REFERENCES posts (id),
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE post_comments (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id    INTEGER NOT NULL REFERENCES posts (id),
    author_id  INTEGER NOT NULL REFERENCES users (id),
    text       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX post_comments_by_post ON post_comments (post_id, id);

CREATE TABLE animal_follows (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    animal_id  INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (user_id, animal_id)
);
CREATE INDEX animal_follows_by_animal ON animal_follows (animal_id, user_id);
