import { useTestMysql } from "../support/mariadb.js";
import { prioritySuite } from "./priority-suite.js";

const mysql = useTestMysql();
prioritySuite("mysql", (name) => mysql().database(name));
