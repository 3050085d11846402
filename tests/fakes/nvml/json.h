/* Part of fake_nvml.c (included once): a small JSON parser for the config file. */
/* ------------------------------------------------------------------ */
/* A small JSON parser (objects, arrays, strings, numbers, bools, null) */
/* ------------------------------------------------------------------ */

typedef enum { J_NULL, J_BOOL, J_NUMBER, J_STRING, J_ARRAY, J_OBJECT } json_type;

typedef struct json {
    json_type type;
    double number;
    int boolean;
    char *string;
    int count;
    char **keys;
    struct json **items;
} json;

typedef struct {
    const char *p;
    const char *end;
    const char *error;
    int depth;
} json_cursor;

static void json_free(json *v) {
    if (!v) return;
    for (int i = 0; i < v->count; i++) {
        if (v->keys) free(v->keys[i]);
        json_free(v->items[i]);
    }
    free(v->keys);
    free(v->items);
    free(v->string);
    free(v);
}

static void skip_space(json_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static json *json_new(json_type type) {
    json *v = calloc(1, sizeof *v);
    if (v) v->type = type;
    return v;
}

static void put_utf8(char *out, size_t *n, unsigned code) {
    if (code < 0x80) {
        out[(*n)++] = (char)code;
    } else if (code < 0x800) {
        out[(*n)++] = (char)(0xC0 | (code >> 6));
        out[(*n)++] = (char)(0x80 | (code & 0x3F));
    } else {
        out[(*n)++] = (char)(0xE0 | (code >> 12));
        out[(*n)++] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (code & 0x3F));
    }
}

static char *parse_string_raw(json_cursor *c) {
    if (c->p >= c->end || *c->p != '"') {
        c->error = "expected a string";
        return NULL;
    }
    c->p++;
    size_t cap = 16, n = 0;
    char *out = malloc(cap);
    while (out && c->p < c->end && *c->p != '"') {
        if (n + 4 >= cap) {
            char *bigger = realloc(out, cap *= 2);
            if (!bigger) break;
            out = bigger;
        }
        char ch = *c->p++;
        if ((unsigned char)ch < 0x20) {
            c->error = "control character in string";
            free(out);
            return NULL;
        }
        if (ch != '\\') {
            out[n++] = ch;
            continue;
        }
        if (c->p >= c->end) break;
        char esc = *c->p++;
        switch (esc) {
        case '"': out[n++] = '"'; break;
        case '\\': out[n++] = '\\'; break;
        case '/': out[n++] = '/'; break;
        case 'b': out[n++] = '\b'; break;
        case 'f': out[n++] = '\f'; break;
        case 'n': out[n++] = '\n'; break;
        case 'r': out[n++] = '\r'; break;
        case 't': out[n++] = '\t'; break;
        case 'u': {
            unsigned code = 0;
            for (int i = 0; i < 4; i++) {
                if (c->p >= c->end) break;
                char h = *c->p++;
                code <<= 4;
                if (h >= '0' && h <= '9') code |= (unsigned)(h - '0');
                else if (h >= 'a' && h <= 'f') code |= (unsigned)(h - 'a' + 10);
                else if (h >= 'A' && h <= 'F') code |= (unsigned)(h - 'A' + 10);
                else c->error = "bad \\u escape";
            }
            put_utf8(out, &n, code);
            break;
        }
        default: c->error = "bad escape in string";
        }
        if (c->error) {
            free(out);
            return NULL;
        }
    }
    if (!out || c->p >= c->end) {
        c->error = "unterminated string";
        free(out);
        return NULL;
    }
    c->p++; /* closing quote */
    out[n] = 0;
    return out;
}

static json *parse_value(json_cursor *c);

static int push_item(json *container, char *key, json *item) {
    json **items = realloc(container->items, sizeof(json *) * (size_t)(container->count + 1));
    if (!items) return 0;
    container->items = items;
    if (container->type == J_OBJECT) {
        char **keys = realloc(container->keys, sizeof(char *) * (size_t)(container->count + 1));
        if (!keys) return 0;
        container->keys = keys;
        container->keys[container->count] = key;
    }
    container->items[container->count++] = item;
    return 1;
}

static json *parse_container(json_cursor *c, json_type type) {
    char close_ch = type == J_OBJECT ? '}' : ']';
    json *v = json_new(type);
    if (!v) return NULL;
    if (++c->depth > 32) {
        c->error = "nesting too deep";
        json_free(v);
        return NULL;
    }
    c->p++; /* opening bracket */
    skip_space(c);
    if (c->p < c->end && *c->p == close_ch) {
        c->p++;
        c->depth--;
        return v;
    }
    for (;;) {
        char *key = NULL;
        skip_space(c);
        if (type == J_OBJECT) {
            key = parse_string_raw(c);
            if (!key) break;
            skip_space(c);
            if (c->p >= c->end || *c->p != ':') {
                c->error = "expected ':'";
                free(key);
                break;
            }
            c->p++;
        }
        json *item = parse_value(c);
        if (!item || !push_item(v, key, item)) {
            free(key);
            json_free(item);
            break;
        }
        skip_space(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == close_ch) {
            c->p++;
            c->depth--;
            return v;
        }
        c->error = type == J_OBJECT ? "expected ',' or '}'" : "expected ',' or ']'";
        break;
    }
    if (!c->error) c->error = "out of memory";
    json_free(v);
    return NULL;
}

static json *parse_value(json_cursor *c) {
    skip_space(c);
    if (c->p >= c->end) {
        c->error = "unexpected end of input";
        return NULL;
    }
    char ch = *c->p;
    if (ch == '{') return parse_container(c, J_OBJECT);
    if (ch == '[') return parse_container(c, J_ARRAY);
    if (ch == '"') {
        char *s = parse_string_raw(c);
        if (!s) return NULL;
        json *v = json_new(J_STRING);
        if (!v) {
            free(s);
            return NULL;
        }
        v->string = s;
        return v;
    }
    static const struct {
        const char *word;
        json_type type;
        int boolean;
    } words[] = {{"true", J_BOOL, 1}, {"false", J_BOOL, 0}, {"null", J_NULL, 0}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t len = strlen(words[i].word);
        if ((size_t)(c->end - c->p) >= len && strncmp(c->p, words[i].word, len) == 0) {
            c->p += len;
            json *v = json_new(words[i].type);
            if (v) v->boolean = words[i].boolean;
            return v;
        }
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        char buf[64];
        size_t len = 0;
        while (c->p + len < c->end && len < sizeof buf - 1 &&
               strchr("+-0123456789.eE", c->p[len]))
            len++;
        memcpy(buf, c->p, len);
        buf[len] = 0;
        char *stop;
        double number = strtod(buf, &stop);
        if (stop != buf + len) {
            c->error = "bad number";
            return NULL;
        }
        c->p += len;
        json *v = json_new(J_NUMBER);
        if (v) v->number = number;
        return v;
    }
    c->error = "unexpected character";
    return NULL;
}

static json *json_get(const json *obj, const char *key) {
    if (!obj || obj->type != J_OBJECT) return NULL;
    for (int i = 0; i < obj->count; i++)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

static double get_number(const json *obj, const char *key, double fallback) {
    json *v = json_get(obj, key);
    return v && v->type == J_NUMBER ? v->number : fallback;
}

static int get_bool(const json *obj, const char *key) {
    json *v = json_get(obj, key);
    return v && ((v->type == J_BOOL && v->boolean) || (v->type == J_NUMBER && v->number != 0));
}

static void get_text(const json *obj, const char *key, char *out, size_t size, const char *fallback) {
    json *v = json_get(obj, key);
    snprintf(out, size, "%s", v && v->type == J_STRING ? v->string : fallback);
}
