import { useTestMysql } from "../support/mariadb.js";
import { crashSuite } from "./crash-suite.js";

const mysql = useTestMysql();
crashSuite("mysql", (name) => mysql().database(name));
