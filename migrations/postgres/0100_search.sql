-- Full-text search of messages' current text: a GIN index over the words of live messages
-- ('simple': lowercased words, no stemming, the same in every language). Deleted messages have
-- no text and are outside the index; an edit changes the text and so the index.
CREATE INDEX messages_search ON messages USING GIN (to_tsvector('simple', text))
    WHERE kind = 'message' AND NOT deleted;
