-- Feeds: the follow graph, posts with like/comment counters, likes, comments, and animal
-- follows (claimants follow the animals they adopted).
CREATE TABLE follows (
    follower_id BIGINT NOT NULL REFERENCES users (id),
    followee_id BIGINT NOT NULL REFERENCES users (id),
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
CREATE INDEX follows_by_followee ON follows (followee_id, follower_id);

CREATE TABLE posts (
    id         BIGSERIAL PRIMARY KEY,
    author_id  BIGINT NOT NULL REFERENCES users (id),
    text       TEXT    NOT NULL,
    media      TEXT    NOT NULL DEFAULT '[]',
    animal_id  BIGINT,
    likes      BIGINT NOT NULL DEFAULT 0,
    comments   BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX posts_by_author ON posts (author_id, id);
CREATE INDEX posts_by_animal ON posts (animal_id, id) WHERE animal_id IS NOT NULL;

CREATE TABLE post_likes (
    post_id    BIGINT NOT NULL REFERENCES posts (id),
    user_id    BIGINT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (post_id, user_id)
);

CREATE TABLE post_comments (
    id         BIGSERIAL PRIMARY KEY,
    post_id    BIGINT NOT NULL REFERENCES posts (id),
    author_id  BIGINT NOT NULL REFERENCES users (id),
    text       TEXT    NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX post_comments_by_post ON post_comments (post_id, id);

CREATE TABLE animal_follows (
    user_id    BIGINT NOT NULL REFERENCES users (id),
    animal_id  BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, animal_id)
);
CREATE INDEX animal_follows_by_animal ON animal_follows (animal_id, user_id);
