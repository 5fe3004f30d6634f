"use strict"; fetch("/gateway/health");
