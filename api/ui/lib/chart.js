// Small SVG charts drawn from API answers (no library): the definition page's run durations.
